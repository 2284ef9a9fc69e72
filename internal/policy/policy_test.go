package policy

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, c := range []struct {
		in   string
		want Rule
		out  string // String(), if not in
	}{
		{in: "api.github.com", want: Rule{Name: "api.github.com"}},
		{in: "API.GitHub.com.", want: Rule{Name: "api.github.com"}, out: "api.github.com"},
		{in: "api.github.com:443/tcp", want: Rule{Name: "api.github.com", Port: 443, Proto: TCP}},
		{in: "api.github.com/UDP", want: Rule{Name: "api.github.com", Proto: UDP}, out: "api.github.com/udp"},
		{in: "*.pythonhosted.org", want: Rule{Name: "pythonhosted.org", Wildcard: true}},
		{in: "*.example.test:8080", want: Rule{Name: "example.test", Wildcard: true, Port: 8080}},
		{in: "10.1.2.3", want: Rule{Prefix: pfx("10.1.2.3/32")}},
		{in: "10.1.2.3:53/udp", want: Rule{Prefix: pfx("10.1.2.3/32"), Port: 53, Proto: UDP}},
		{in: "10.0.0.0/8", want: Rule{Prefix: pfx("10.0.0.0/8")}},
		{in: "10.0.0.0/8:53/udp", want: Rule{Prefix: pfx("10.0.0.0/8"), Port: 53, Proto: UDP}},
		{in: "10.0.0.0/8/tcp", want: Rule{Prefix: pfx("10.0.0.0/8"), Proto: TCP}},
		{in: "2001:db8::1", want: Rule{Prefix: pfx("2001:db8::1/128")}},
		{in: "[2001:db8::1]:443/tcp", want: Rule{Prefix: pfx("2001:db8::1/128"), Port: 443, Proto: TCP}},
		{in: "2001:db8::/32", want: Rule{Prefix: pfx("2001:db8::/32")}},
		{in: "[2001:db8::/32]:443", want: Rule{Prefix: pfx("2001:db8::/32"), Port: 443}},
		{in: "::ffff:10.1.2.3", want: Rule{Prefix: pfx("10.1.2.3/32")}, out: "10.1.2.3"},
		{in: "  my_host-1.local  ", want: Rule{Name: "my_host-1.local"}, out: "my_host-1.local"},
	} {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			continue
		}
		out := c.out
		if out == "" {
			out = c.in
		}
		if got.String() != out {
			t.Errorf("Parse(%q).String() = %q, want %q", c.in, got.String(), out)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"*.", "give a domain after the *."},
		{"*", "give a domain after the *."},
		{"host:99999", `port "99999": must be a number from 1 to 65535`},
		{"host:0", `port "0"`},
		{"host:", "empty port"},
		{"10.0.0.0/33", "10.0.0.0/33 is not an address prefix"},
		{"2001:db8::/129", "is not an address prefix"},
		{"10.0.0.1/8", "write 10.0.0.0/8"},
		{"host/sctp", `protocol "sctp": must be tcp or udp`},
		{"a.*.example.com", "a wildcard is *. at the start only"},
		{"exa mple.com", "cannot appear in a name"},
		{"a..b", "label must have 1 to 63"},
		{"10.0.0", "neither an address nor a DNS name"},
		{"[2001:db8::1", "no closing bracket"},
		{"[2001:db8::1]x", "only :PORT may follow"},
		{"fe80::1%eth0", "zone"},
		{"2001:db8::zz", "is not an IPv6 address"},
		{"", "empty rule"},
		{":443", "no name or address"},
	} {
		got, err := Parse(c.in)
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", c.in, got)
			continue
		}
		if got != (Rule{}) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q): %v (rule %+v); want an error with %q and no rule", c.in, err, got, c.want)
		}
		if regexp.MustCompile(`[.;] [A-Z]`).MatchString(err.Error()) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q): %q is more than one sentence", c.in, err)
		}
	}
}

func TestParseFile(t *testing.T) {
	rules, err := ParseFile(strings.NewReader("# CI egress\n\napi.github.com:443/tcp  # the API\n*.pythonhosted.org\n10.0.0.0/8\n"), "allow")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rules {
		got = append(got, r.String())
	}
	if want := "api.github.com:443/tcp *.pythonhosted.org 10.0.0.0/8"; strings.Join(got, " ") != want {
		t.Errorf("rules %q, want %q", got, want)
	}
	_, err = ParseFile(strings.NewReader("ok.example\n\n10.0.0.0/33 # bad\n"), ".egress-allow")
	if err == nil || !strings.HasPrefix(err.Error(), `.egress-allow:3: rule "10.0.0.0/33": `) {
		t.Errorf("error %v, want one naming .egress-allow:3 and the rule", err)
	}
}

func TestMatch(t *testing.T) {
	must := func(s string) Rule {
		r, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, c := range []struct {
		rule, name string
		want       bool
	}{
		{"api.github.com", "api.github.com", true},
		{"api.github.com", "x.api.github.com", false},
		{"*.pythonhosted.org", "files.pythonhosted.org", true},
		{"*.pythonhosted.org", "a.b.pythonhosted.org", true},
		{"*.pythonhosted.org", "pythonhosted.org", false},
		{"*.pythonhosted.org", "evilpythonhosted.org", false},
		{"10.0.0.0/8", "10.0.0.1", false},
	} {
		if got := must(c.rule).MatchesName(c.name); got != c.want {
			t.Errorf("%s matches name %s: %v, want %v", c.rule, c.name, got, c.want)
		}
	}
	a := netip.MustParseAddr
	for _, c := range []struct {
		rule  string
		addr  string
		port  uint16
		proto Proto
		want  bool
	}{
		{"10.0.0.0/8", "10.9.9.9", 443, TCP, true},
		{"10.0.0.0/8", "11.0.0.1", 443, TCP, false},
		{"10.0.0.0/8", "10.9.9.9", 0, 1, true}, // ICMP: no port, any protocol
		{"10.0.0.0/8:53", "10.9.9.9", 53, UDP, true},
		{"10.0.0.0/8:53", "10.9.9.9", 53, TCP, true},
		{"10.0.0.0/8:53", "10.9.9.9", 54, UDP, false},
		{"10.0.0.0/8:53", "10.9.9.9", 0, 1, false},
		{"10.0.0.0/8:53/udp", "10.9.9.9", 53, TCP, false},
		{"10.0.0.0/8/udp", "10.9.9.9", 9999, UDP, true},
		{"10.0.0.0/8/udp", "10.9.9.9", 9999, TCP, false},
		{"[2001:db8::1]:443/tcp", "2001:db8::1", 443, TCP, true},
		{"[2001:db8::1]:443/tcp", "2001:db8::2", 443, TCP, false},
		{"2001:db8::/32", "2001:db8:1::5", 22, TCP, true},
		{"10.1.2.3", "::ffff:10.1.2.3", 80, TCP, true},
		{"api.github.com", "10.1.2.3", 80, TCP, false}, // names allow through grants only
	} {
		if got := must(c.rule).Allows(a(c.addr), c.port, c.proto); got != c.want {
			t.Errorf("%s allows %s:%d/%v: %v, want %v", c.rule, c.addr, c.port, c.proto, got, c.want)
		}
	}
}

func TestGrants(t *testing.T) {
	r1, _ := Parse("www.example.test:8080/tcp")
	r2, _ := Parse("*.cdn.test:53")
	p := New([]Rule{r1, r2})
	now := time.Unix(1000, 0)
	a := netip.MustParseAddr("198.51.100.80")
	if p.Allows(a, 8080, TCP, now) {
		t.Fatal("allowed before any answer")
	}
	if g := p.GrantName("evil.test", a, time.Hour, now); g != nil {
		t.Fatalf("an unlisted name granted %v", g)
	}
	g := p.GrantName("WWW.example.test.", a, 5*time.Second, now)
	if len(g) != 1 || g[0] != (Grant{Addr: a, Port: 8080, Proto: TCP, TTL: MinGrant}) {
		t.Fatalf("grants %+v", g)
	}
	if !p.Allows(a, 8080, TCP, now.Add(MinGrant-time.Second)) || p.Allows(a, 8080, TCP, now.Add(MinGrant)) {
		t.Error("grant not allowed within its TTL, or still after it")
	}
	if p.Allows(a, 8080, TCP, now.Add(-time.Millisecond)) {
		t.Error("grant allows a connection that started before the answer")
	}
	if p.Allows(a, 8081, TCP, now) || p.Allows(a, 8080, UDP, now) {
		t.Error("grant allows another port or protocol")
	}
	// The same answer again within the TTL: no new grant; later: an
	// extension of the live one.
	if g := p.GrantName("www.example.test", a, time.Second, now); len(g) != 0 {
		t.Errorf("repeated answer granted %+v", g)
	}
	if g := p.GrantName("www.example.test", a, time.Hour, now.Add(time.Second)); len(g) != 1 || !g[0].Live {
		t.Errorf("longer answer: %+v, want one live grant", g)
	}
	g = p.GrantName("x.cdn.test", netip.MustParseAddr("::ffff:10.0.0.1"), time.Minute, now)
	if len(g) != 2 || g[0].Proto != TCP || g[1].Proto != UDP || g[0].Addr.Is4In6() {
		t.Errorf("port rule without protocol: grants %+v, want TCP and UDP of the unmapped address", g)
	}
	dns, _ := Parse("10.0.0.1:53")
	p.AlwaysAllow(dns)
	if !p.Allows(netip.MustParseAddr("10.0.0.1"), 53, UDP, now.Add(time.Hour)) {
		t.Error("the always-allowed DNS server is not allowed")
	}
}

func TestSuggestRoundTrip(t *testing.T) {
	a := netip.MustParseAddr
	conns := []Conn{
		{Addr: a("198.51.100.80"), Port: 8080, Proto: TCP, Name: "www.example.test"},
		{Addr: a("198.51.100.80"), Port: 8080, Proto: TCP, Name: "www.example.test"},
		{Addr: a("10.77.0.1"), Port: 7, Proto: UDP},
		{Addr: a("fd77:80::80"), Port: 443, Proto: TCP},
		{Addr: a("10.77.0.1"), Proto: Any}, // ping
	}
	rules := Suggest(conns, []string{"www.example.test", "nothing.example.test"})
	var lines []string
	for _, r := range rules {
		lines = append(lines, r.String())
	}
	want := "nothing.example.test www.example.test:8080/tcp 10.77.0.1 10.77.0.1:7/udp [fd77:80::80]:443/tcp"
	if got := strings.Join(lines, " "); got != want {
		t.Fatalf("Suggest: %q\nwant       %q", got, want)
	}
	back, err := ParseFile(strings.NewReader(strings.Join(lines, "\n")), "suggested")
	if err != nil {
		t.Fatal(err)
	}
	p := New(back)
	now := time.Now()
	for _, c := range conns {
		if c.Name != "" {
			p.GrantName(c.Name, c.Addr, time.Minute, now)
		}
		if !p.Allows(c.Addr, c.Port, c.Proto, now) {
			t.Errorf("the suggested rules do not allow %+v", c)
		}
	}
	if p.Allows(a("10.77.0.2"), 7, UDP, now) || p.Allows(a("198.51.100.80"), 443, TCP, now) {
		t.Error("the suggested rules allow more than the run did")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"api.github.com:443/tcp", "*.pythonhosted.org", "10.0.0.0/8:53/udp",
		"[2001:db8::1]:443/tcp", "2001:db8::/32", "*.", "host:99999", "10.0.0.0/33", "[::ffff:1.2.3.4/120]:1/udp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if r != (Rule{}) {
				t.Fatalf("Parse(%q): error %v with a rule %+v", s, err, r)
			}
			return
		}
		if r.IsName() == r.Prefix.IsValid() {
			t.Fatalf("Parse(%q) = %+v: neither or both of name and prefix", s, r)
		}
		again, err := Parse(r.String())
		if err != nil || again != r {
			t.Fatalf("Parse(%q) = %+v, whose String %q parses to %+v, %v", s, r, r.String(), again, err)
		}
	})
}
