package main

import (
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/nsntrace/nsntrace/internal/policy"
	"github.com/nsntrace/nsntrace/internal/summary"
)

// egress is a run's egress policy at work: the relay asks it about the
// program's lookups and tells it the answers (which grant addresses, in
// nft too when enforced), the capture asks it about every connection the
// program starts, and at the end it lists the violations and suggests
// rules. Without rules (--suggest-policy alone) it only records.
type egress struct {
	pol     *policy.Policy // nil without rules
	enforce bool
	// grant installs a grant in the run's nft table (enforce).
	grant func(policy.Grant) error

	mu      sync.Mutex
	viols   map[violKey]*summary.Violation
	order   []violKey
	lookups map[string]bool        // names the program looked up
	named   map[netip.Addr]namedAt // addresses answers gave, by the name asked
}

// namedAt is the name an answer gave an address for, and when.
type namedAt struct {
	name string
	at   time.Time
}

type violKey struct {
	kind, name string
	addr       netip.Addr
	port       uint16
	proto      string
}

func newEgress(o *options) *egress {
	e := &egress{enforce: o.enforce, viols: map[violKey]*summary.Violation{},
		lookups: map[string]bool{}, named: map[netip.Addr]namedAt{}}
	if o.policyOn() {
		e.pol = policy.New(o.rules)
	}
	return e
}

// check is the relay's Check: it records the lookup, and refuses it
// (enforce) or lets it pass (audit) when no rule allows the name.
func (e *egress) check(q dnsmessage.Question, tcp bool) bool {
	name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lookups[name] = true
	if e.pol == nil || len(e.pol.NameRules(name)) > 0 {
		return true
	}
	proto := "udp"
	if tcp {
		proto = "tcp"
	}
	e.violate(violKey{kind: "lookup", name: name, port: 53, proto: proto}, e.enforce)
	return !e.enforce
}

// answer is the relay's Answer: the addresses of an answer (A and AAAA,
// at the end of CNAME chains alike) are remembered by the name asked and,
// when a rule allows that name, granted for their TTL before the program
// gets the answer.
func (e *egress) answer(msg []byte) error {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.RCode != dnsmessage.RCodeSuccess {
		return nil // nothing to learn; the program gets it as it is
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	if err := p.SkipAllQuestions(); err != nil {
		return nil
	}
	name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
	now := time.Now()
	for {
		rh, err := p.AnswerHeader()
		if err != nil {
			return nil
		}
		var a netip.Addr
		switch rh.Type {
		case dnsmessage.TypeA:
			r, err := p.AResource()
			if err != nil {
				return nil
			}
			a = netip.AddrFrom4(r.A)
		case dnsmessage.TypeAAAA:
			r, err := p.AAAAResource()
			if err != nil {
				return nil
			}
			a = netip.AddrFrom16(r.AAAA).Unmap()
		default:
			if err := p.SkipAnswer(); err != nil {
				return nil
			}
			continue
		}
		e.mu.Lock()
		if old, ok := e.named[a]; !ok || old.name != name {
			e.named[a] = namedAt{name, now}
		}
		e.mu.Unlock()
		if e.pol == nil {
			continue
		}
		for _, g := range e.pol.GrantName(name, a, time.Duration(rh.TTL)*time.Second, now) {
			if e.grant != nil {
				if err := e.grant(g); err != nil {
					return err
				}
			}
		}
	}
}

// comment judges a connection the program started at ts (Unix ns), to
// remote over proto (summary.NewConv.Initiated): "" when the policy allows it
// or does not apply, else the packet comment that marks it, and the
// violation is counted. Called by the capture goroutine for the first
// packet of each connection only, which it may see well after the
// packet came (ring blocks): so the packet's time decides, not the
// clock's.
func (e *egress) comment(remote netip.AddrPort, proto summary.Proto, ts int64) string {
	if e.pol == nil {
		return ""
	}
	a := remote.Addr().Unmap()
	if !a.IsGlobalUnicast() {
		return "" // link-local, multicast, broadcast: never leaves the link
	}
	pp, port := policy.Any, uint16(0)
	switch proto {
	case summary.ProtoTCP:
		pp, port = policy.TCP, remote.Port()
	case summary.ProtoUDP:
		pp, port = policy.UDP, remote.Port()
	}
	at := time.Unix(0, ts)
	if e.pol.Allows(a, port, pp, at) {
		return ""
	}
	e.mu.Lock()
	name := ""
	if n, ok := e.named[a]; ok && !n.at.After(at) {
		name = n.name
	}
	blocked := e.enforce // through the host or to it: both are refused
	e.violate(violKey{kind: "connection", name: name, addr: a, port: port, proto: proto.String()}, blocked)
	e.mu.Unlock()
	what := "audit, not blocked"
	if blocked {
		what = "blocked"
	}
	dest := a.String()
	if port != 0 {
		dest = netip.AddrPortFrom(a, port).String()
	}
	dest += "/" + proto.String()
	if name != "" {
		dest += " (" + name + ")"
	}
	return fmt.Sprintf("nsntrace: egress violation (%s): %s not allowed", what, dest)
}

// violate counts one violation of k; e.mu is held.
func (e *egress) violate(k violKey, blocked bool) {
	v := e.viols[k]
	if v == nil {
		v = &summary.Violation{Kind: k.kind, Name: k.name, Port: k.port, Proto: k.proto, Blocked: blocked}
		if k.addr.IsValid() {
			v.Addr = k.addr.String()
		}
		e.viols[k] = v
		e.order = append(e.order, k)
	}
	v.Count++
}

// violations are the violations so far, in order of first occurrence;
// nil when there is no policy.
func (e *egress) violations() []summary.Violation {
	if e.pol == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]summary.Violation, 0, len(e.order))
	for _, k := range e.order {
		out = append(out, *e.viols[k])
	}
	return out
}

// suggest writes to file the rules that allow exactly what the report's
// outbound connections and the lookups did, leaving out the connections
// to the program's DNS server (dns), which is always allowed.
func (e *egress) suggest(file string, r *summary.Report, dns netip.Addr, owner *fileOwner) error {
	e.mu.Lock()
	var conns []policy.Conn
	for _, c := range r.Connections {
		a, err := netip.ParseAddr(c.RemoteAddr)
		if err != nil || c.Direction != "outbound" || a == dns && c.RemotePort == 53 {
			continue
		}
		if !a.IsGlobalUnicast() {
			continue
		}
		pc := policy.Conn{Addr: a, Name: e.named[a].name}
		switch c.Proto {
		case "tcp":
			pc.Proto, pc.Port = policy.TCP, c.RemotePort
		case "udp":
			pc.Proto, pc.Port = policy.UDP, c.RemotePort
		}
		if pc.Name == "" && len(c.Names) > 0 {
			pc.Name = c.Names[0]
		}
		conns = append(conns, pc)
	}
	var names []string
	for n := range e.lookups {
		names = append(names, n)
	}
	e.mu.Unlock()
	sort.Strings(names)
	var b strings.Builder
	// Every line of a quoted command is a comment line: arguments may
	// hold newlines (sh -c scripts).
	fmt.Fprintf(&b, "# Egress rules suggested by nsntrace from a run of: %s\n# Use with: nsntrace --allow-file FILE --policy enforce ...\n",
		strings.ReplaceAll(quoteShort(r.Command), "\n", "\n# "))
	for _, rule := range policy.Suggest(conns, names) {
		b.WriteString(rule.String())
		b.WriteByte('\n')
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("write suggested policy: %w", err)
	}
	if err := owner.give(f); err != nil {
		f.Close()
		return fmt.Errorf("write suggested policy: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("write suggested policy %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write suggested policy %s: %w", file, err)
	}
	return nil
}
