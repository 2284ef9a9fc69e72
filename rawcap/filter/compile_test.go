package filter

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/nsntrace/nsntrace/pcapng"
)

var (
	testMACSrc = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	testMACDst = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

func mkPacket(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mkEth(et layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: testMACSrc, DstMAC: testMACDst, EthernetType: et}
}

func mkIPv4(proto layers.IPProtocol, src, dst string) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

func mkIPv6(nh layers.IPProtocol, src, dst string) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: nh, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

func mkTCP(sport, dport uint16, syn, ack bool) *layers.TCP {
	return &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), DataOffset: 5, SYN: syn, ACK: ack}
}

// TestSemantics checks libpcap's documented behaviour on crafted packets.
func TestSemantics(t *testing.T) {
	pay := gopacket.Payload([]byte("payload"))
	v4tcp := mkPacket(t, mkEth(layers.EthernetTypeIPv4), mkIPv4(layers.IPProtocolTCP, "10.0.0.1", "10.0.0.2"), mkTCP(1234, 80, true, false), pay)
	v4tcpAck := mkPacket(t, mkEth(layers.EthernetTypeIPv4), mkIPv4(layers.IPProtocolTCP, "10.0.0.1", "10.0.0.2"), mkTCP(80, 1234, false, true), pay)
	opts := mkIPv4(layers.IPProtocolTCP, "10.0.0.1", "10.0.0.2")
	opts.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	v4tcpOpts := mkPacket(t, mkEth(layers.EthernetTypeIPv4), opts, mkTCP(1234, 80, true, false), pay)
	frag := mkIPv4(layers.IPProtocolTCP, "10.0.0.1", "10.0.0.2")
	frag.FragOffset = 100
	v4frag := mkPacket(t, mkEth(layers.EthernetTypeIPv4), frag, mkTCP(1234, 80, true, false), pay)
	v4udp := mkPacket(t, mkEth(layers.EthernetTypeIPv4), mkIPv4(layers.IPProtocolUDP, "192.168.1.5", "8.8.8.8"), &layers.UDP{SrcPort: 5353, DstPort: 53}, pay)
	v4icmp := mkPacket(t, mkEth(layers.EthernetTypeIPv4), mkIPv4(layers.IPProtocolICMPv4, "10.0.0.1", "10.0.0.2"), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, pay)
	v6tcp := mkPacket(t, mkEth(layers.EthernetTypeIPv6), mkIPv6(layers.IPProtocolTCP, "2001:db8::1", "2001:db8::2"), mkTCP(1234, 80, true, false), pay)
	v6icmp := mkPacket(t, mkEth(layers.EthernetTypeIPv6), mkIPv6(layers.IPProtocolICMPv6, "fe80::1", "ff02::1"), gopacket.Payload([]byte{128, 0, 0, 0, 0, 1, 0, 1}))
	v6frag := mkPacket(t, mkEth(layers.EthernetTypeIPv6), mkIPv6(layers.IPProtocolIPv6Fragment, "2001:db8::1", "2001:db8::2"),
		gopacket.Payload([]byte{6, 0, 0, 1, 0, 0, 0, 7}), mkTCP(1234, 80, true, false), pay)
	arp := mkPacket(t, &layers.Ethernet{SrcMAC: testMACSrc, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: 1, Protocol: 0x800, HwAddressSize: 6, ProtAddressSize: 4, Operation: 1,
			SourceHwAddress: testMACSrc, SourceProtAddress: net.IPv4(10, 0, 0, 1).To4(), DstHwAddress: make([]byte, 6), DstProtAddress: net.IPv4(10, 0, 0, 9).To4()})

	packets := map[string][]byte{
		"v4tcp": v4tcp, "v4tcpAck": v4tcpAck, "v4tcpOpts": v4tcpOpts, "v4frag": v4frag, "v4udp": v4udp,
		"v4icmp": v4icmp, "v6tcp": v6tcp, "v6icmp": v6icmp, "v6frag": v6frag, "arp": arp,
	}
	tests := []struct {
		expr   string
		accept []string // every other packet must be rejected
	}{
		{"tcp", []string{"v4tcp", "v4tcpAck", "v4tcpOpts", "v4frag", "v6tcp", "v6frag"}},
		{"tcp port 80", []string{"v4tcp", "v4tcpAck", "v4tcpOpts", "v6tcp"}},
		{"dst port 80", []string{"v4tcp", "v4tcpOpts", "v6tcp"}},
		{"port 53", []string{"v4udp"}},
		{"tcp port 53", nil},
		{"port domain and src net 192.168", []string{"v4udp"}},
		{"portrange 50-60", []string{"v4udp"}},
		{"icmp", []string{"v4icmp"}},
		{"icmp6", []string{"v6icmp"}},
		{"icmp6[icmp6type] = icmp6-echo", []string{"v6icmp"}},
		{"icmp[icmptype] = icmp-echo", []string{"v4icmp"}},
		{"tcp[tcpflags] & tcp-syn != 0", []string{"v4tcp", "v4tcpOpts"}},
		{"tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-ack", []string{"v4tcpAck"}},
		{"host 10.0.0.1", []string{"v4tcp", "v4tcpAck", "v4tcpOpts", "v4frag", "v4icmp", "arp"}},
		{"ip host 10.0.0.1", []string{"v4tcp", "v4tcpAck", "v4tcpOpts", "v4frag", "v4icmp"}},
		{"arp dst host 10.0.0.9", []string{"arp"}},
		{"host 2001:db8::2", []string{"v6tcp", "v6frag"}},
		{"ip6 net ff00::/8", []string{"v6icmp"}},
		{"ip6 multicast", []string{"v6icmp"}},
		{"ether broadcast", []string{"arp"}},
		{"ether src 02:00:00:00:00:01 and not ip and not ip6", []string{"arp"}},
		{"ip6 proto 6", []string{"v6tcp", "v6frag"}},
		{"ip[0] & 0xf > 5", []string{"v4tcpOpts"}},
		{"ip[6:2] & 0x1fff != 0", []string{"v4frag"}},
		{"ether[12:2] = 0x806", []string{"arp"}},
		{"greater 85 and ip6", []string{"v6frag"}},
		{"not ip and not ip6", []string{"arp"}},
		{"udp or icmp and host 10.0.0.1", []string{"v4icmp"}}, // (udp or icmp) and host
		{"tcp port 80 or 53 and not ip6", []string{"v4tcp", "v4tcpAck", "v4tcpOpts", "v4udp"}[:3]},
	}
	for _, tt := range tests {
		prog := compileOK(t, tt.expr)
		want := map[string]bool{}
		for _, n := range tt.accept {
			want[n] = true
		}
		for name, pkt := range packets {
			if got := vmAccepts(t, prog, pkt); got != want[name] {
				t.Errorf("%q on %s: accept=%v, want %v\n%s", tt.expr, name, got, want[name], Disassemble(prog))
			}
		}
	}
}

func TestAcceptValueIsSnaplen(t *testing.T) {
	for _, tc := range []struct {
		snap, want uint32
	}{{96, 96}, {0, pcapng.DefaultSnapLen}, {65535, 65535}} {
		prog, err := Compile("ip or not ip", tc.snap)
		if err != nil {
			t.Fatal(err)
		}
		if len(prog) != 1 && Disassemble(prog) == "" {
			t.Fatal("empty")
		}
		found := false
		for _, in := range prog {
			if in.Op == clsRET|retK && in.K != 0 {
				found = true
				if in.K != tc.want {
					t.Errorf("snaplen %d: accept returns %d, want %d", tc.snap, in.K, tc.want)
				}
			}
		}
		if !found {
			t.Errorf("snaplen %d: no accepting return", tc.snap)
		}
	}
	prog, err := Compile("", 1500)
	if err != nil || len(prog) != 1 || prog[0].Op != clsRET|retK || prog[0].K != 1500 {
		t.Errorf(`Compile("") = %v, %v; want one "ret #1500"`, prog, err)
	}
}

// TestLongJumps builds a program whose jumps exceed 255 instructions, so
// trampolines are needed, and checks it still decides correctly.
func TestLongJumps(t *testing.T) {
	var hosts []string
	for i := 0; i < 150; i++ {
		hosts = append(hosts, fmt.Sprintf("10.1.%d.%d", i/200, i%200+1))
	}
	expr := "tcp and (host " + strings.Join(hosts, " or ") + ")"
	prog := compileOK(t, expr)
	if err := Validate(prog); err != nil {
		t.Fatal(err)
	}
	if len(prog) < 512 {
		t.Fatalf("program only %d instructions; test needs long jumps", len(prog))
	}
	if !strings.Contains(Disassemble(prog), "ja ") {
		t.Fatal("no trampoline in a program with long jumps")
	}
	for _, tc := range []struct {
		ip     string
		accept bool
	}{{"10.1.0.1", true}, {"10.1.0.60", true}, {"10.1.0.150", true}, {"10.1.0.151", false}, {"10.2.0.1", false}} {
		pkt := mkPacket(t, mkEth(layers.EthernetTypeIPv4), mkIPv4(layers.IPProtocolTCP, "192.0.2.1", tc.ip), mkTCP(1, 2, true, false))
		if got := vmAccepts(t, prog, pkt); got != tc.accept {
			t.Errorf("dst %s: accept=%v, want %v", tc.ip, got, tc.accept)
		}
		// ARP for the same address is not tcp.
		arp := mkPacket(t, mkEth(layers.EthernetTypeARP), &layers.ARP{AddrType: 1, Protocol: 0x800, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: testMACSrc, SourceProtAddress: net.ParseIP(tc.ip).To4(), DstHwAddress: testMACDst, DstProtAddress: net.ParseIP(tc.ip).To4()})
		if vmAccepts(t, prog, arp) {
			t.Errorf("ARP for %s accepted by a tcp filter", tc.ip)
		}
	}
}

func TestTooLong(t *testing.T) {
	var hosts []string
	for i := 0; i < 1000; i++ {
		hosts = append(hosts, fmt.Sprintf("10.%d.%d.1", i/250, i%250))
	}
	_, err := Compile("host "+strings.Join(hosts, " or "), 0)
	if err == nil || !strings.Contains(err.Error(), "more than the kernel's limit of 4096") {
		t.Fatalf("got %v, want the 4096-instruction limit", err)
	}
}

func TestHostNames(t *testing.T) {
	stubResolver(t, map[string][]string{"dual.test": {"192.0.2.7", "2001:db8::7"}})
	v4 := mkPacket(t, mkEth(layers.EthernetTypeIPv4), mkIPv4(layers.IPProtocolUDP, "192.0.2.7", "10.0.0.1"), &layers.UDP{SrcPort: 1, DstPort: 2})
	v6 := mkPacket(t, mkEth(layers.EthernetTypeIPv6), mkIPv6(layers.IPProtocolUDP, "2001:db8::1", "2001:db8::7"), &layers.UDP{SrcPort: 1, DstPort: 2})
	for _, tc := range []struct {
		expr   string
		v4, v6 bool
	}{
		{"host dual.test", true, true},
		{"ip host dual.test", true, false},
		{"ip6 host dual.test", false, true},
		{"src host dual.test", true, false},
		{"dst host dual.test", false, true},
	} {
		prog := compileOK(t, tc.expr)
		if got := vmAccepts(t, prog, v4); got != tc.v4 {
			t.Errorf("%q on IPv4: %v, want %v", tc.expr, got, tc.v4)
		}
		if got := vmAccepts(t, prog, v6); got != tc.v6 {
			t.Errorf("%q on IPv6: %v, want %v", tc.expr, got, tc.v6)
		}
	}
}

// TestLiveSocketPrimitives checks the shape of the Linux-specific code:
// ancillary loads for vlan and direction, initialised scratch memory.
func TestLiveSocketPrimitives(t *testing.T) {
	for expr, want := range map[string][]string{
		"inbound":              {"ldh      [type]", "jeq      #0x4"},
		"outbound":             {"ldh      [type]"},
		"vlan":                 {"ldb      [vlanp]", "jeq      #0x8100", "jeq      #0x88a8", "jeq      #0x9100"},
		"vlan 10 and ip":       {"ldh      [vlan_tci]", "and      #0xfff", "st       M[0]", "ldx      M[0]", "ldh      [x + 12]"},
		"vlan and tcp port 80": {"ldb      [x + 14]", "lsh      #2"},
	} {
		prog := compileOK(t, expr)
		text := Disassemble(prog)
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%q lacks %q:\n%s", expr, w, text)
			}
		}
		if err := Validate(prog); err != nil {
			t.Errorf("%q: %v", expr, err)
		}
	}
}

// TestRightOperandChecks pins libpcap's gen_arth behaviour: only the left
// operand of + - * / ... contributes protocol checks.
func TestRightOperandChecks(t *testing.T) {
	arp := mkPacket(t, mkEth(layers.EthernetTypeARP), &layers.ARP{AddrType: 1, Protocol: 0x800, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: 1, SourceHwAddress: testMACSrc, SourceProtAddress: []byte{1, 2, 3, 4}, DstHwAddress: testMACDst, DstProtAddress: []byte{5, 6, 7, 8}})
	// ether[14] of this ARP packet is 0x00 (hardware type high byte).
	if !vmAccepts(t, compileOK(t, "0 + ip[0] = 0"), arp) {
		t.Error("right operand ip[0] was guarded by an IPv4 check; libpcap does not guard it")
	}
	if vmAccepts(t, compileOK(t, "ip[0] + 0 = 0"), arp) {
		t.Error("left operand ip[0] matched a non-IPv4 packet")
	}
}

// TestDeterministic compiles each expression twice: programs must not
// depend on map order or other state.
func TestDeterministic(t *testing.T) {
	fuzzResolver(t)
	for _, expr := range fuzzSeeds {
		a, errA := Compile(expr, 0)
		b, errB := Compile(expr, 0)
		if (errA == nil) != (errB == nil) || FormatDDD(a) != FormatDDD(b) {
			t.Errorf("%q compiles differently on a second run", expr)
		}
	}
}
