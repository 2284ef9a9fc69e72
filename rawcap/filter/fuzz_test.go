package filter

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fuzzCheck asserts the invariants every Compile result must satisfy.
func fuzzCheck(t *testing.T, expr string) {
	t.Helper()
	prog, err := Compile(expr, 0)
	if err != nil {
		if prog != nil {
			t.Fatalf("Compile(%q) returned a program and error %v", expr, err)
		}
		var se *SyntaxError
		if errors.As(err, &se) && (se.Pos < 0 || se.Pos > len(expr) || se.Expr != expr) {
			t.Fatalf("Compile(%q): bad error position %d (expr %q)", expr, se.Pos, se.Expr)
		}
		if strings.Contains(err.Error(), "internal error") {
			t.Fatalf("Compile(%q): %v", expr, err)
		}
		return
	}
	if err := Validate(prog); err != nil {
		t.Fatalf("Compile(%q) produced an invalid program: %v\n%s", expr, err, Disassemble(prog))
	}
}

func fuzzResolver(t *testing.T) {
	stubResolver(t, map[string][]string{"localhost": {"127.0.0.1", "::1"}, "h.test": {"192.0.2.1"}})
}

var fuzzSeeds = []string{
	"tcp port 80", "port 80 or 443", "tcp dst port 80 or not 443", "host 1.2.3.4 or (5.6.7.8 and 9.9.9.9)",
	"vlan 10 and vlan 20 and tcp[13] & 2 != 0", "ip6 net fe80::/10 or ether host 1:2:3:4:5:6",
	"icmp[icmptype] = icmp-echo", "len - 14 > ip[2:2]", "(tcp[(tcp[12]>>4)*4] = 0x47)", "not (",
	"host localhost", "portrange http-https", "ether proto \\ipx", "inbound and less 100",
	"ip[0] ^ 1 | 2 & 3 << 4 + 5 * 6 = 7", "byte 5 & 3", "", "((((", ")", "tcp[0:4] = 1 and udp[0:2] % 3 = 0",
}

// FuzzCompile feeds arbitrary strings to the compiler.
func FuzzCompile(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		fuzzResolver(t)
		fuzzCheck(t, expr)
	})
}

// exprGen turns fuzzer bytes into an expression of the pcap-filter grammar,
// so that the fuzzer spends its time past the parser.
type exprGen struct {
	b     []byte
	depth int
}

func (g *exprGen) n(max int) int {
	if len(g.b) == 0 {
		return 0
	}
	v := int(g.b[0]) % max
	g.b = g.b[1:]
	return v
}

func (g *exprGen) pick(s ...string) string { return s[g.n(len(s))] }

func (g *exprGen) id() string {
	switch g.n(10) {
	case 0:
		return fmt.Sprint(g.n(256) * g.n(256))
	case 1:
		return fmt.Sprintf("%d.%d.%d.%d", g.n(256), g.n(256), g.n(256), g.n(256))
	case 2:
		return fmt.Sprintf("%d.%d", g.n(256), g.n(256))
	case 3:
		return fmt.Sprintf("%d.%d.0.0/%d", g.n(256), g.n(256), g.n(40))
	case 4:
		return g.pick("::1", "fe80::1", "fe80::/10", "2001:db8::/32", "ff02::1")
	case 5:
		return g.pick("1:2:3:4:5:6", "ff:ff:ff:ff:ff:ff", "0102.0304.0506")
	case 6:
		return g.pick("http", "domain", "ssh", "nosuch", "localhost", "h.test", "\\tcp", "\\udp", "\\ip")
	case 7:
		return fmt.Sprintf("%d-%d", g.n(100), g.n(100))
	case 8:
		return "not " + g.id()
	}
	return "(" + g.id() + " " + g.pick("and", "or") + " " + g.id() + ")"
}

func (g *exprGen) arith() string {
	g.depth++
	defer func() { g.depth-- }()
	if g.depth > 4 {
		return fmt.Sprint(g.n(256))
	}
	switch g.n(8) {
	case 0, 1:
		return fmt.Sprint(g.n(256))
	case 2:
		return g.pick("len", "tcpflags", "tcp-syn", "icmptype", "icmp-echo", "icmp6-echo")
	case 3, 4:
		p := g.pick("ether", "ip", "ip6", "arp", "tcp", "udp", "icmp", "icmp6", "sctp", "igmp", "pim", "vrrp")
		if g.n(2) == 0 {
			return fmt.Sprintf("%s[%s]", p, g.arith())
		}
		return fmt.Sprintf("%s[%s:%s]", p, g.arith(), g.pick("1", "2", "4", "3"))
	case 5:
		return "-" + g.arith()
	case 6:
		return "(" + g.arith() + ")"
	}
	return g.arith() + " " + g.pick("+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>") + " " + g.arith()
}

func (g *exprGen) term() string {
	g.depth++
	defer func() { g.depth-- }()
	if g.depth > 6 {
		return g.pick("tcp", "udp", "ip", "ip6")
	}
	switch g.n(12) {
	case 0:
		return g.pick("ip", "ip6", "arp", "rarp", "tcp", "udp", "sctp", "icmp", "icmp6", "igmp", "pim", "vrrp", "ah", "esp")
	case 1, 2, 3:
		head := []string{}
		if g.n(2) == 0 {
			head = append(head, g.pick("ether", "ip", "ip6", "arp", "rarp", "tcp", "udp", "sctp", "icmp"))
		}
		if g.n(2) == 0 {
			head = append(head, g.pick("src", "dst", "src or dst", "src and dst"))
		}
		if g.n(3) != 0 || len(head) == 0 || head[len(head)-1] == "ether" {
			head = append(head, g.pick("host", "net", "port", "portrange", "proto"))
		}
		return strings.Join(head, " ") + " " + g.id()
	case 4:
		return g.pick("", "ether ", "ip ", "ip6 ", "tcp ") + g.pick("broadcast", "multicast")
	case 5:
		return g.pick("less ", "greater ") + fmt.Sprint(g.n(256)*8)
	case 6, 7:
		return g.arith() + " " + g.pick("=", "==", "!=", "<", "<=", ">", ">=") + " " + g.arith()
	case 8:
		if g.n(2) == 0 {
			return "vlan"
		}
		return fmt.Sprintf("vlan %d", g.n(256)*20)
	case 9:
		return g.pick("inbound", "outbound", "byte 3 & 1", "byte 2 < 7", "protochain 6", "mpls")
	case 10:
		return g.pick("not ", "! ") + g.term()
	}
	return "(" + g.expr() + ")"
}

func (g *exprGen) expr() string {
	s := g.term()
	for i := g.n(4); i > 0; i-- {
		op := g.pick(" and ", " or ", " && ", " || ")
		if g.n(3) == 0 {
			s += op + g.id()
		} else {
			s += op + g.term()
		}
	}
	return s
}

// FuzzGrammar compiles expressions generated from the grammar.
func FuzzGrammar(f *testing.F) {
	for i := 0; i < 32; i++ {
		seed := make([]byte, 64)
		for j := range seed {
			seed[j] = byte(i*31 + j*7)
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzResolver(t)
		g := &exprGen{b: b}
		fuzzCheck(t, g.expr())
	})
}

// TestGeneratedExpressions runs a fixed sample of the grammar fuzzer in
// ordinary test runs.
func TestGeneratedExpressions(t *testing.T) {
	fuzzResolver(t)
	ok := 0
	for i := 0; i < 3000; i++ {
		b := make([]byte, 96)
		x := uint32(i)*2654435761 + 1 // the same on 32-bit CPUs
		for j := range b {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			b[j] = byte(x)
		}
		g := &exprGen{b: b}
		expr := g.expr()
		fuzzCheck(t, expr)
		if _, err := Compile(expr, 0); err == nil {
			ok++
		}
	}
	if ok < 500 {
		t.Errorf("only %d of 3000 generated expressions compile; the generator is not reaching the code generator", ok)
	}
}
