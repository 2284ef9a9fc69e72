package filter

import "testing"

// TestGrouping checks libpcap's grammar: and/or of equal precedence,
// left-associative; not binding tighter; aliases; qualifier inheritance.
func TestGrouping(t *testing.T) {
	same := [][2]string{
		{"tcp or udp and icmp", "(tcp or udp) and icmp"},
		{"tcp and udp or icmp", "(tcp and udp) or icmp"},
		{"tcp or udp or icmp and ip6", "((tcp or udp) or icmp) and ip6"},
		{"not tcp and udp", "(not tcp) and udp"},
		{"not tcp or udp", "(not tcp) or udp"},
		{"not not tcp", "not (not tcp)"},
		{"tcp && udp || icmp", "tcp and udp or icmp"},
		{"!tcp", "not tcp"},
		{"((tcp))", "tcp"},
		// qualifier inheritance
		{"port 80 or 443", "port 80 or port 443"},
		{"port 80 or 443 or 53", "port 80 or port 443 or port 53"},
		{"host 1.2.3.4 or 5.6.7.8", "host 1.2.3.4 or host 5.6.7.8"},
		{"tcp dst port 80 or not 443", "tcp dst port 80 or not tcp dst port 443"},
		{"src host 1.2.3.4 and (5.6.7.8 or 9.9.9.9)", "src host 1.2.3.4 and (src host 5.6.7.8 or src host 9.9.9.9)"},
		{"host (1.2.3.4 or 5.6.7.8)", "host 1.2.3.4 or host 5.6.7.8"},
		{"port 80 or (443 or 53)", "port 80 or (port 443 or port 53)"},
		{"port 80 and (tcp) or 443", "port 80 and tcp or port 443"},
		{"not tcp port 80 or 443", "not tcp port 80 or tcp port 443"},
		{"ip proto 6 or 17", "ip proto 6 or ip proto 17"},
		{"ether src 1:2:3:4:5:6 or 0:0:0:0:0:1", "ether src 1:2:3:4:5:6 or ether src 0:0:0:0:0:1"},
		{"src 10.0.0.1 or 80", "src host 10.0.0.1 or src host 0.0.0.80"},
		// direction and address forms
		{"src or dst host 1.2.3.4", "host 1.2.3.4"},
		{"dst or src port 1", "port 1"},
		{"dst and src host 1.2.3.4", "src and dst host 1.2.3.4"},
		{"src 1.2.3.4", "src host 1.2.3.4"},
		{"ether src 1:2:3:4:5:6", "ether src 01:02:03:04:05:06"},
		{"ether src 0102.0304.0506", "ether src 1-2-3-4-5-6"},
		{"net 10", "net 10.0.0.0/8"},
		{"net loopback", "host 127.0.0.0"},
		{"src net link-local", "src host 169.254.0.0"},
		{"net 10", "net 10.0.0.0 mask 255.0.0.0"},
		{"net 192.168", "net 192.168.0.0/16"},
		{"host 10.1", "net 10.1.0.0/16"},
		{"host 10", "host 0.0.0.10"},
		{"host ::1", "host 0:0::1"},
		{"net 2001:db8::/32", "net 2001:0db8::/32"},
		// names and symbolic constants
		{"port http", "tcp port 80"},
		{"port domain", "port 53"},
		{"portrange http-https", "portrange 80-443"}, // http is tcp-only, https is not: any
		{"portrange ssh-ssh", "tcp portrange 22-22"},
		{"portrange 20-10", "portrange 10-20"},
		{"proto \\udp", "proto 17"},
		{"ip6 proto \\ipv6-icmp", "ip6 proto 58"},
		{"ether proto \\ip", "ether proto 0x800"},
		{"ether proto \\arp", "arp"},
		{"ip proto 1", "icmp"},
		{"tcp[tcpflags] & tcp-syn != 0", "tcp[13] & 2 != 0"},
		{"icmp[icmptype] = icmp-echo", "icmp[0] = 8"},
		{"icmp6[icmp6type] = icmp6-echo", "icmp6[0] = 128"},
		{"ip[010] = 1", "ip[8] = 1"},
		{"length > 1", "len > 1"},
		{"less 100", "len <= 100"},
		{"greater 100", "len >= 100"},
		{"byte 3 = 4", "ether[3] = 4"},
		// arithmetic precedence: | < & < shifts < + - < * / %; ^ takes
		// the rest of the expression (libpcap declares no precedence).
		{"1 + 2 * ip[0] = 3", "1 + (2 * ip[0]) = 3"},
		{"ip[0] & 1 | 2 = 3", "(ip[0] & 1) | 2 = 3"},
		{"ip[0] | 1 & 2 = 3", "ip[0] | (1 & 2) = 3"},
		{"ip[0] << 1 + 1 = 4", "ip[0] << (1 + 1) = 4"},
		{"ip[0] * 3 ^ 1 = 0", "ip[0] * (3 ^ 1) = 0"},
		{"ip[0] ^ 3 * 1 = 0", "ip[0] ^ (3 * 1) = 0"},
		{"ip[0] % 2 + 3 = 0", "ip[0] % (2 + 3) = 0"},
		{"ip[0] * 2 % 3 = 0", "ip[0] * (2 % 3) = 0"},
		{"-ip[0] % 56 % 79 = 0", "-(ip[0] % (56 % 79)) = 0"},
		{"-ip[0] ^ 2 = 0", "-(ip[0] ^ 2) = 0"},
		{"-ip[0] * 2 = 0", "(-ip[0]) * 2 = 0"},
		{"ip[0] - 1 - 1 = 0", "(ip[0] - 1) - 1 = 0"},
		{"ip[0] / ip[1] / ip[2] = 0", "(ip[0] / ip[1]) / ip[2] = 0"},
		{"-ip[0] + 1 = 0", "(-ip[0]) + 1 = 0"},
		{"ip[1+1] = 0", "ip[2] = 0"},
		{"(ip[0]) = 1", "ip[0] = 1"},
		{"udp or ((54)) <= ip[0]", "udp or 54 <= ip[0]"},
		{"udp or 8 % 118 = 56", "udp or (8 % 118 = 56)"},
		{"port 80 or ((443))", "port 80 or port 443"},
		{"port 80 or ((443) or 53)", "port 80 or (port 443 or port 53)"},
		{"port 80 or (not (443) and 53)", "port 80 or (not port 443 and port 53)"},
		// libpcap drops the protocol checks of a right-hand arithmetic
		// operand, so udp[0] below is loaded from any packet.

	}
	for _, tt := range same {
		a, b := condOf(t, tt[0]), condOf(t, tt[1])
		if a != b {
			t.Errorf("%q and %q compile differently:\n%s\n%s", tt[0], tt[1], a, b)
		}
	}
	differ := [][2]string{
		{"tcp or udp and icmp", "tcp or (udp and icmp)"},
		{"not tcp and udp", "not (tcp and udp)"},
		{"port 80 or 443", "port 80 or host 0.0.0.187"},
		{"1 + 2 * ip[0] = 3", "(1 + 2) * ip[0] = 3"},
		{"ip[0] * 3 ^ 1 = 0", "(ip[0] * 3) ^ 1 = 0"},
		{"port 80", "tcp port 80"},
		{"host 1.2.3.4", "ip host 1.2.3.4"},
	}
	for _, tt := range differ {
		if a, b := condOf(t, tt[0]), condOf(t, tt[1]); a == b {
			t.Errorf("%q and %q compile the same, want different", tt[0], tt[1])
		}
	}
}

// TestVlanShiftsLaterOffsets checks that `vlan` moves the offsets of what
// follows it, and only that.
func TestVlanShiftsLaterOffsets(t *testing.T) {
	before, after := condOf(t, "ip and vlan"), condOf(t, "vlan and ip")
	if before == after {
		t.Fatal("vlan position does not matter")
	}
	if a, b := condOf(t, "vlan and vlan and ip"), condOf(t, "vlan and ip"); a == b {
		t.Error("second vlan does not shift offsets")
	}
}
