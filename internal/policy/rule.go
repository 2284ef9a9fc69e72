package policy

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Proto is a rule's transport protocol; the values are IPPROTO_*.
type Proto uint8

// The protocols a rule can name. Any (the zero value) is every protocol.
const (
	Any Proto = 0
	TCP Proto = 6
	UDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case Any:
		return "any"
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "proto " + strconv.Itoa(int(p))
}

// Rule allows connections to a name, the names below a domain, or an
// address prefix, on one port (or any) over one protocol (or any).
type Rule struct {
	// Name is a DNS name in lower case without the trailing dot; with
	// Wildcard it is the domain whose subdomains (not itself) match.
	// Empty for address rules.
	Name     string
	Wildcard bool
	// Prefix is the allowed addresses of an address rule (a single
	// address is a /32 or /128); invalid for name rules.
	Prefix netip.Prefix
	// Port is the allowed destination port, 0 for any.
	Port uint16
	// Proto is the allowed protocol, Any for both TCP and UDP when Port
	// is set, for every protocol otherwise.
	Proto Proto
}

// IsName reports whether r is a name or wildcard rule.
func (r Rule) IsName() bool { return r.Name != "" }

// String is r in the syntax Parse reads.
func (r Rule) String() string {
	var host string
	switch {
	case r.Wildcard:
		host = "*." + r.Name
	case r.IsName():
		host = r.Name
	case r.Prefix.IsSingleIP():
		host = r.Prefix.Addr().String()
	default:
		host = r.Prefix.String()
	}
	if r.Port != 0 {
		if r.Prefix.IsValid() && r.Prefix.Addr().Is6() {
			host = "[" + host + "]"
		}
		host += ":" + strconv.Itoa(int(r.Port))
	}
	if r.Proto != Any {
		host += "/" + r.Proto.String()
	}
	return host
}

// Parse reads one rule: NAME, *.DOMAIN, ADDRESS or PREFIX, each with an
// optional :PORT and /tcp or /udp; an IPv6 address or prefix with a port
// goes in brackets ([2001:db8::1]:443/tcp). Its error is one phrase
// saying what is wrong, without the rule itself.
func Parse(s string) (Rule, error) {
	var r Rule
	s = strings.TrimSpace(s)
	if s == "" {
		return Rule{}, fmt.Errorf("empty rule: give a name, *.domain, address or prefix")
	}
	rest := s
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		switch p := rest[i+1:]; {
		case strings.EqualFold(p, "tcp"):
			r.Proto, rest = TCP, rest[:i]
		case strings.EqualFold(p, "udp"):
			r.Proto, rest = UDP, rest[:i]
		case isLetters(p):
			return Rule{}, fmt.Errorf("protocol %q: must be tcp or udp", p)
		}
	}
	host, port, err := splitPort(rest)
	if err != nil {
		return Rule{}, err
	}
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return Rule{}, fmt.Errorf("port %q: must be a number from 1 to 65535", port)
		}
		r.Port = uint16(n)
	}
	if host == "" {
		return Rule{}, fmt.Errorf("no name or address before the port")
	}
	if strings.ContainsRune(host, '/') {
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return Rule{}, fmt.Errorf("%s is not an address prefix: give ADDRESS/BITS with up to 32 bits for IPv4, 128 for IPv6", host)
		}
		if p.Addr().Zone() != "" {
			return Rule{}, fmt.Errorf("prefix %s: an IPv6 zone has no place in a rule", host)
		}
		if p.Masked() != p {
			return Rule{}, fmt.Errorf("prefix %s has bits set beyond its length: write %s", host, p.Masked())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			if p.Bits() < 0 {
				return Rule{}, fmt.Errorf("prefix %s: an IPv4-mapped prefix needs at least 96 bits", host)
			}
		}
		r.Prefix = p
		return r, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return Rule{}, fmt.Errorf("address %s: an IPv6 zone has no place in a rule", host)
		}
		a = a.Unmap()
		r.Prefix = netip.PrefixFrom(a, a.BitLen())
		return r, nil
	}
	if strings.ContainsRune(host, ':') {
		return Rule{}, fmt.Errorf("%s is not an IPv6 address (put an IPv6 address with a port in brackets: [2001:db8::1]:443)", host)
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if strings.HasPrefix(name, "*.") || name == "*" {
		r.Wildcard, name = true, strings.TrimPrefix(strings.TrimPrefix(name, "*"), ".")
		if name == "" {
			return Rule{}, fmt.Errorf("wildcard %q: give a domain after the *. (*.example.com)", host)
		}
	}
	if err := checkName(name); err != nil {
		return Rule{}, err
	}
	r.Name = name
	return r, nil
}

// splitPort splits HOST[:PORT], [HOST]:PORT and a bare IPv6 address or
// prefix (which has colons and no port).
func splitPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", fmt.Errorf("%q has no closing bracket", s)
		}
		host, rest := s[1:end], s[end+1:]
		switch {
		case rest == "":
			return host, "", nil
		case strings.HasPrefix(rest, ":"):
			return host, rest[1:], nil
		}
		return "", "", fmt.Errorf("%q after the brackets: only :PORT may follow", rest)
	}
	if strings.Count(s, ":") > 1 {
		return s, "", nil // IPv6 without a port
	}
	host, port, _ = strings.Cut(s, ":")
	if strings.Contains(s, ":") && port == "" {
		return "", "", fmt.Errorf("empty port after %q", host)
	}
	return host, port, nil
}

// checkName checks a DNS name: labels of 1 to 63 letters, digits, '-' or
// '_', 253 characters at most, and not all digits at the end (then it is
// a mistyped address).
func checkName(name string) error {
	if len(name) > 253 {
		return fmt.Errorf("name %.20s...: longer than the 253 characters a DNS name can have", name)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%q is not a DNS name: each dot-separated label must have 1 to 63 characters", name)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is neither an address, a prefix nor a DNS name (%q cannot appear in a name; a wildcard is *. at the start only)", name, c)
			}
		}
	}
	if isDigits(labels[len(labels)-1]) {
		return fmt.Errorf("%q is neither an address nor a DNS name", name)
	}
	return nil
}

func isLetters(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseFile reads rules one a line; '#' starts a comment, blank lines
// are skipped. Errors name the file (name) and the line.
func ParseFile(rd io.Reader, name string) ([]Rule, error) {
	var rules []Rule
	sc := bufio.NewScanner(rd)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(line) == "" {
			continue
		}
		r, err := Parse(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: rule %q: %v", name, n, strings.TrimSpace(line), err)
		}
		rules = append(rules, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return rules, nil
}

// MatchesName reports whether name rule r covers name (lower case, no
// trailing dot): the name itself, or for a wildcard any name below its
// domain.
func (r Rule) MatchesName(name string) bool {
	if !r.IsName() {
		return false
	}
	if r.Wildcard {
		return len(name) > len(r.Name)+1 && strings.HasSuffix(name, r.Name) && name[len(name)-len(r.Name)-1] == '.'
	}
	return name == r.Name
}

// allowsPort reports whether r's port and protocol cover a connection to
// port over proto (an IPPROTO_* number).
func (r Rule) allowsPort(port uint16, proto Proto) bool {
	if r.Proto != Any && r.Proto != proto {
		return false
	}
	if r.Port == 0 {
		return true
	}
	return (proto == TCP || proto == UDP) && port == r.Port
}

// Allows reports whether address rule r covers a connection to a:port
// over proto.
func (r Rule) Allows(a netip.Addr, port uint16, proto Proto) bool {
	return r.Prefix.IsValid() && r.Prefix.Contains(a.Unmap()) && r.allowsPort(port, proto)
}
