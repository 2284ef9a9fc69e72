package filter

import (
	"errors"
	"testing"
)

// TestCompileErrors lists expressions that must be refused, with the exact
// message. Where libpcap refuses an expression, its message is used.
func TestCompileErrors(t *testing.T) {
	stubResolver(t, map[string][]string{"v6only.test": {"2001:db8::1"}})
	tests := []struct{ expr, want string }{
		// syntax
		{"tcp or", `filter: syntax error: unexpected end of expression (at offset 6)`},
		{"tcp or or udp", `filter: syntax error: unexpected "or" (at offset 7)`},
		{"and tcp", `filter: syntax error: unexpected "and" (at offset 0)`},
		{"(tcp", `filter: syntax error: expected ")" at end of expression (at offset 4)`},
		{"tcp)", `filter: syntax error: unbalanced ")" (at offset 3)`},
		{"not", `filter: syntax error: unexpected end of expression (at offset 3)`},
		{"tcp 80", `filter: syntax error: unexpected "80" (at offset 4)`},
		{"1.2.3.4", `filter: syntax error: unexpected "1.2.3.4" (at offset 0)`},
		{"ip and 1.2.3.4", `filter: syntax error: "1.2.3.4" needs a qualifier such as host, net or port (at offset 7)`},
		{"host", `filter: syntax error: expected a host, network, port or protocol at end of expression (at offset 4)`},
		{"src and src host 1.2.3.4", `filter: syntax error: expected a host, network, port or protocol, found "and" (at offset 4)`},
		{"src proto 6", `filter: syntax error: unexpected "proto" after a direction (at offset 4)`},
		{"tcp $", `filter: syntax error: unexpected character '$' (at offset 4)`},
		{"len", `filter: syntax error: expected a comparison at end of expression (at offset 3)`},
		{"tcp[0:2 = 1", `filter: syntax error: expected "]", found "=" (at offset 8)`},
		{"tcp[tcpflags] & tcp-syn", `filter: syntax error: expected a comparison at end of expression (at offset 23)`},
		{"less foo", `filter: syntax error: expected a number, found "foo" (at offset 5)`},
		{"byte 5 ^ 3", `filter: syntax error: expected one of & | < > = after "byte 5" (at offset 7)`},
		// semantics, libpcap's wording
		{"port 70000", `filter: illegal port number 70000 > 65535 (at offset 5)`},
		{"port nosuchservice", `filter: unknown port 'nosuchservice' (at offset 5)`},
		{"udp port http", `filter: port 'http' is tcp (at offset 9)`},
		{"ip port 80", `filter: illegal qualifier of 'port' (at offset 8)`},
		{"ip6 portrange 1-2", `filter: illegal qualifier of 'portrange' (at offset 14)`},
		{"portrange 1-70000", `filter: illegal port number 70000 > 65535 (at offset 10)`},
		{"arp proto 6", `filter: arp does not encapsulate another protocol (at offset 10)`},
		{"tcp proto 6", `filter: 'tcp proto' is bogus (at offset 10)`},
		{"ip proto \\nosuch", `filter: unknown ip proto 'nosuch' (at offset 9)`},
		{"ether proto \\nosuch", `filter: unknown ether proto 'nosuch' (at offset 12)`},
		{"host 300.1.2.3", `filter: invalid IPv4 address '300.1.2.3' (at offset 5)`},
		{"net 10.0.0.1/8", `filter: non-network bits set in "10.0.0.1/8" (at offset 4)`},
		{"net 10.0.0.0/33", `filter: mask length must be <= 32 (at offset 4)`},
		{"net 10.1.0.0 mask 255.0.0.0", `filter: non-network bits set in "10.1.0.0 mask 255.0.0.0" (at offset 4)`},
		{"src 10.0.0.0/8", `filter: Mask syntax for networks only (at offset 4)`},
		{"host fe80::/10", `filter: Mask syntax for networks only (at offset 5)`},
		{"net fe80::1/10", `filter: non-network bits set in "fe80::1/10" (at offset 4)`},
		{"net fe80::/129", `filter: mask length must be <= 128 (at offset 4)`},
		{"port fe80::1", `filter: invalid qualifier against IPv6 address (at offset 5)`},
		{"ip host fe80::1", `filter: 'ip' modifier applied to ip6 host (at offset 8)`},
		{"tcp host 1.2.3.4", `filter: 'tcp' modifier applied to host (at offset 9)`},
		{"ip6 net 10.0.0.0/8", `filter: 'ip6' modifier applied to ip net (at offset 8)`},
		{"ether host 1.2.3.4", `filter: illegal link layer address (at offset 11)`},
		{"host 1:2:3:4:5:6", `filter: ethernet address used in non-ether expression (at offset 5)`},
		{"ether host nosuch", `filter: unknown ether host 'nosuch' (at offset 11)`},
		{"host nosuch.test", `filter: unknown host 'nosuch.test' (at offset 5)`},
		{"net default", `filter: unknown network 'default' (at offset 4)`},
		{"net nosuch", `filter: unknown network 'nosuch' (at offset 4)`},
		{"ip host v6only.test", `filter: unknown host 'v6only.test' for specified address family (at offset 8)`},
		{"ether", `filter: link layer applied in wrong context (at offset 0)`},
		{"tcp[0:3] = 1", `filter: data size must be 1, 2, or 4 (at offset 6)`},
		{"ip[0] / 0 = 1", `filter: division by zero (at offset 6)`},
		{"ip[0] % 0 = 1", `filter: modulus by zero (at offset 6)`},
		{"ip[0] << 32 = 1", `filter: shift by more than 31 bits (at offset 6)`},
		{"host ((1.2.3.4) or 5.6.7.8)", `filter: syntax error: unexpected "(" (at offset 6)`},
		{"ah[0] = 1", `filter: unsupported index operation (at offset 0)`},
		{"vlan 5000", `filter: VLAN tag 5000 greater than maximum 4095 (at offset 0)`},
		{"ip6 broadcast", `filter: only link-layer/IP broadcast filters supported (at offset 4)`},
		{"tcp multicast", `filter: link-layer multicast filters supported only on ethernet/FDDI/token ring/ARCNET/802.11/ATM LANE/Fibre Channel (at offset 4)`},
		{"ip proto 6 and src proto 6", `filter: syntax error: unexpected "proto" after a direction (at offset 19)`},
		{"port 1.2.3.4", `filter: 'port' modifier applied to ip host (at offset 5)`},
		{"tcp portrange 10.1", `filter: 'portrange' modifier applied to ip host (at offset 14)`},
		{"ip proto 10.1.2.3", `filter: 'proto' modifier applied to ip host (at offset 9)`},
		{"ip[0] / ip[0] = 1", `filter: division by zero (at offset 6)`},
		{"1 << (40 + ip[0]) = 1", `filter: shift by more than 31 bits (at offset 2)`},
		{"1 % -0 = 1", `filter: modulus by zero (at offset 2)`},
		{"byte 3 & 1", `filter: "byte 3 &" is not supported (libpcap never loads the byte); write ether[3] & 1 != 0`},
		{"byte 3 | 1", `filter: "byte 3 |" is not supported (libpcap never loads the byte); write ether[3] | 1 != 0`},
		// can never match
		{"ip and arp", `filter: expression rejects all packets`},
		{"tcp and udp", `filter: expression rejects all packets`},
		{"ip6 and udp[0:2] = 53", `filter: expression rejects all packets`},
		{"1 = 2", `filter: expression rejects all packets`},
		{"not 1 = 1", `filter: expression rejects all packets`},
		{"greater 1288 and less 384", `filter: expression rejects all packets`},
		{"vlan and ip and vlan 10", `filter: expression rejects all packets`},
	}
	for _, tt := range tests {
		prog, err := Compile(tt.expr, 0)
		if err == nil {
			t.Errorf("Compile(%q) succeeded:\n%s", tt.expr, Disassemble(prog))
			continue
		}
		if prog != nil {
			t.Errorf("Compile(%q) returned a program with its error", tt.expr)
		}
		if err.Error() != tt.want {
			t.Errorf("Compile(%q)\n got %s\nwant %s", tt.expr, err, tt.want)
		}
	}
}

// TestUnsupported checks that primitives this compiler does not implement
// are named and refused, never approximated.
func TestUnsupported(t *testing.T) {
	for expr, name := range map[string]string{
		"protochain 6":           "protochain",
		"ip6 protochain 6":       "protochain",
		"gateway router":         "gateway",
		"wlan host 1:2:3:4:5:6":  "wlan",
		"fddi host 1:2:3:4:5:6":  "fddi",
		"type mgt":               "type",
		"subtype beacon":         "subtype",
		"wlan addr1 1:2:3:4:5:6": "wlan",
		"atalk":                  "atalk",
		"aarp":                   "aarp",
		"decnet host 10.15":      "decnet",
		"iso":                    "iso",
		"isis":                   "isis",
		"clnp":                   "clnp",
		"stp":                    "stp",
		"ipx":                    "ipx",
		"netbeui":                "netbeui",
		"mpls":                   "mpls",
		"mpls 100":               "mpls",
		"pppoed":                 "pppoed",
		"pppoes 3":               "pppoes",
		"geneve":                 "geneve",
		"ifindex 2":              "ifindex",
		"llc":                    "llc",
		"tcp and on eth0":        "on",
		"radio":                  "radio",
		"sio 3":                  "sio",
		"tcp or (udp and lane)":  "lane",
		"tcp and atalk[0] = 1":   "atalk",
		"ether host 1:2:3:4:5:6 or decnet src 1.2": "decnet",
	} {
		_, err := Compile(expr, 0)
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("Compile(%q) = %v, want ErrUnsupported", expr, err)
			continue
		}
		if want := `filter: "` + name + `" is not supported`; err.Error() != want {
			t.Errorf("Compile(%q) = %q, want %q", expr, err, want)
		}
	}
}

func TestSyntaxErrorCaret(t *testing.T) {
	_, err := Compile("tcp port 80 and hots 10.0.0.1", 0)
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want *SyntaxError", err)
	}
	if se.Expr != "tcp port 80 and hots 10.0.0.1" || se.Pos != 16 {
		t.Errorf("got Expr %q Pos %d", se.Expr, se.Pos)
	}
	want := "tcp port 80 and hots 10.0.0.1\n                ^"
	if se.Caret() != want {
		t.Errorf("Caret()\n%s\nwant\n%s", se.Caret(), want)
	}
	if errors.Is(err, ErrUnsupported) || errors.Is(err, ErrRejectsAll) {
		t.Error("syntax error matches the wrong sentinel")
	}
	if _, err := Compile("ip and arp", 0); !errors.Is(err, ErrRejectsAll) {
		t.Errorf("ip and arp: %v, want ErrRejectsAll", err)
	}
}
