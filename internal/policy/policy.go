package policy

import (
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// MinGrant is the least time an address from a DNS answer stays allowed.
// Answers with a TTL of 0 or a few seconds are common behind load
// balancers, and the program connects after the answer reached it, not
// at the same instant: a shorter grant would refuse the very connection
// the lookup was made for.
const MinGrant = 30 * time.Second

// Grant is an address a DNS answer for an allowed name made reachable,
// on the port and protocol of the name's rule, until TTL has passed.
type Grant struct {
	Addr  netip.Addr
	Port  uint16
	Proto Proto
	TTL   time.Duration
	// Live says that the same grant was already in force: what installs
	// grants must extend it, not add it.
	Live bool
}

type grantKey struct {
	addr  netip.Addr
	port  uint16
	proto Proto
}

// Policy is a rule set and the addresses granted so far by DNS answers
// for its names. Its methods are safe for concurrent use: the DNS relay
// grants while the capture asks.
type Policy struct {
	rules  []Rule
	always []Rule // allowed without being the user's rules: the program's DNS server

	mu     sync.RWMutex
	grants map[grantKey]span
	byAddr map[netip.Addr][]grantKey
}

// span is when a grant is in force: from the answer that made it until
// its TTL has passed. Connections are judged at the time of their first
// packet, which the capture may see after later answers arrived.
type span struct{ from, until time.Time }

// New returns a policy of rules.
func New(rules []Rule) *Policy {
	return &Policy{rules: rules, grants: map[grantKey]span{}, byAddr: map[netip.Addr][]grantKey{}}
}

// Rules are the user's rules.
func (p *Policy) Rules() []Rule { return p.rules }

// AlwaysAllow adds r to what is allowed without being a rule of the
// user's (the program's DNS server); before the policy is in use.
func (p *Policy) AlwaysAllow(r Rule) { p.always = append(p.always, r) }

// NameRules returns the rules that cover name (any case, trailing dot or
// not); none means a lookup of name is not allowed.
func (p *Policy) NameRules(name string) []Rule {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	var out []Rule
	for _, r := range p.rules {
		if r.MatchesName(name) {
			out = append(out, r)
		}
	}
	return out
}

// GrantName records that a DNS answer for name gave addr with ttl, and
// returns the grants it makes: one for each rule covering name (a rule
// with a port and no protocol grants TCP and UDP). A ttl below MinGrant
// counts as MinGrant.
func (p *Policy) GrantName(name string, addr netip.Addr, ttl time.Duration, now time.Time) []Grant {
	rules := p.NameRules(name)
	if len(rules) == 0 {
		return nil
	}
	ttl = max(ttl, MinGrant)
	addr = addr.Unmap()
	until := now.Add(ttl)
	var out []Grant
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range rules {
		protos := []Proto{r.Proto}
		if r.Port != 0 && r.Proto == Any {
			protos = []Proto{TCP, UDP}
		}
		for _, proto := range protos {
			k := grantKey{addr, r.Port, proto}
			old, ok := p.grants[k]
			if ok && !old.until.Before(until) {
				continue // already granted for longer
			}
			live := ok && old.until.After(now)
			if !ok {
				p.byAddr[addr] = append(p.byAddr[addr], k)
			}
			from := now
			if live {
				from = old.from
			}
			p.grants[k] = span{from, until}
			out = append(out, Grant{Addr: addr, Port: r.Port, Proto: proto, TTL: ttl, Live: live})
		}
	}
	return out
}

// Allows reports whether a connection to a:port over proto, starting at
// now, is allowed: by an address rule, by the program's DNS server, or by
// an address a DNS answer for an allowed name granted before now and
// whose TTL had not passed at now.
func (p *Policy) Allows(a netip.Addr, port uint16, proto Proto, now time.Time) bool {
	a = a.Unmap()
	for _, r := range p.always {
		if r.Allows(a, port, proto) {
			return true
		}
	}
	for _, r := range p.rules {
		if r.Allows(a, port, proto) {
			return true
		}
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, k := range p.byAddr[a] {
		if (k.proto == Any || k.proto == proto) && (k.port == 0 || k.port == port && (proto == TCP || proto == UDP)) && p.grants[k].covers(now) {
			return true
		}
	}
	return false
}

// Conn is one connection the program started, for Suggest.
type Conn struct {
	Addr  netip.Addr
	Port  uint16 // 0 for protocols without ports
	Proto Proto  // Any for protocols other than TCP and UDP
	// Name is the name the program looked up to get Addr, if any.
	Name string
}

// Suggest returns the rules that allow exactly conns and the lookups of
// names (which the program may have made without connecting): a name
// rule where the connection's address came from a lookup, an address
// rule otherwise, with the port and protocol. Names looked up without a
// connection get a rule without a port, as a lookup needs a rule for its
// name. The rules are sorted and without duplicates.
func Suggest(conns []Conn, names []string) []Rule {
	seen := map[Rule]bool{}
	named := map[string]bool{}
	var out []Rule
	add := func(r Rule) {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	for _, c := range conns {
		r := Rule{Port: c.Port, Proto: c.Proto}
		if c.Proto != TCP && c.Proto != UDP {
			r.Port, r.Proto = 0, Any
		}
		if n := strings.TrimSuffix(strings.ToLower(c.Name), "."); n != "" && checkName(n) == nil {
			r.Name = n
			named[n] = true
		} else {
			a := c.Addr.Unmap()
			r.Prefix = netip.PrefixFrom(a, a.BitLen())
		}
		add(r)
	}
	for _, n := range names {
		n = strings.TrimSuffix(strings.ToLower(n), ".")
		if n != "" && !named[n] && checkName(n) == nil {
			add(Rule{Name: n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.IsName() != b.IsName() {
			return a.IsName()
		}
		return a.String() < b.String()
	})
	return out
}

func (s span) covers(t time.Time) bool { return !t.Before(s.from) && t.Before(s.until) }
