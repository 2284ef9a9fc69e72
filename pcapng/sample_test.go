package pcapng

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// sample is a capture with every kind of block and option the writer
// produces; the round-trip, golden and oracle tests all write it.
type sample struct {
	cfg     Config
	ifaces  []Interface
	packets []Packet
	names   []sampleNames
	stats   map[int]Stats
}

type sampleNames struct {
	addr  netip.Addr
	names []string
}

var (
	macProgram = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	macGateway = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
	ipProgram  = netip.MustParseAddr("10.200.0.1")
	ipServer   = netip.MustParseAddr("192.0.2.53")
	ip6Program = netip.MustParseAddr("fd00::1")
	ip6Server  = netip.MustParseAddr("2001:db8::1")
)

// udpFrame returns an Ethernet frame of exactly size bytes (at least 42
// for IPv4, 62 for IPv6) carrying a UDP datagram from src to dst.
func udpFrame(t testing.TB, src, dst netip.Addr, size int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: macProgram, DstMAC: macGateway}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 9} // discard
	var net gopacket.NetworkLayer
	hdr := 14 + 8
	if src.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
			SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		net, hdr = ip, hdr+20
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
			SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		net, hdr = ip, hdr+40
	}
	if err := udp.SetNetworkLayerForChecksum(net); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("nsntrace"), size/8+1)[:size-hdr]
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, net.(gopacket.SerializableLayer), udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	if len(buf.Bytes()) != size {
		t.Fatalf("frame of %d bytes, want %d", len(buf.Bytes()), size)
	}
	return buf.Bytes()
}

// newSample returns the sample capture. Timestamps are fixed, so the
// written file is byte for byte reproducible.
func newSample(t testing.TB) *sample {
	const t0 = 1700000000_123456789
	big := udpFrame(t, ipServer, ipProgram, 9000)
	s := &sample{
		cfg: Config{
			Format:   FormatPcapNG,
			Hardware: "x86_64",
			OS:       "Linux 6.1.0",
			UserAppl: "nsntrace test",
			Comments: []string{"nsntrace dig @192.0.2.53 dns.example", "second comment, not ASCII: grüße"},
		},
		ifaces: []Interface{
			{LinkType: LinkTypeEthernet, SnapLen: 262144, Name: "nsn42h", Description: "traced veth", Filter: "udp or tcp", OS: "Linux 6.1.0"},
			{LinkType: LinkTypeEthernet, SnapLen: 128, Name: "eth1"},
		},
		packets: []Packet{
			{Interface: 0, Timestamp: t0, Data: udpFrame(t, ipProgram, ipServer, 74), Direction: DirectionOutbound, Comment: "first packet to dns.example"},
			{Interface: 0, Timestamp: t0 + 1, Data: udpFrame(t, ipServer, ipProgram, 1514), Direction: DirectionInbound, Reception: ReceptionUnicast},
			{Interface: 1, Timestamp: t0 + 999_999_999, Length: 1000, Data: udpFrame(t, ipServer, ipProgram, 1000)[:128], Direction: DirectionInbound, Reception: ReceptionBroadcast, DropCount: 3},
			{Interface: 0, Timestamp: t0 + 1_000_000_000, Data: udpFrame(t, ip6Program, ip6Server, 101), Direction: DirectionOutbound, Reception: ReceptionMulticast},
			{Interface: 0, Timestamp: t0 + 2_000_000_001, Data: big, Direction: DirectionInbound, Reception: ReceptionPromiscuous, Comment: "jumbo"},
			{Interface: 0, Timestamp: t0 + 3_000_000_000, Data: udpFrame(t, ipProgram, ipServer, 61)},
			{Interface: 0, Timestamp: t0 + 3_000_000_001, Length: 60, Data: nil},
		},
		names: []sampleNames{
			{ipServer, []string{"dns.example"}},
			{ip6Server, []string{"v6.example", "alias.example"}},
		},
		stats: map[int]Stats{
			0: {StartTime: t0 - 5, EndTime: t0 + 4_000_000_000, Received: 10, IfDrop: 1, OSDrop: 2, FilterAccept: 7,
				HasReceived: true, HasIfDrop: true, HasOSDrop: true, HasFilterAccept: true},
			1: {StartTime: t0 - 5, EndTime: t0 + 4_000_000_000, OSDrop: 5, HasOSDrop: true},
		},
	}
	return s
}

// pcapOnly returns the sample reduced to what classic pcap can hold: the
// first interface and its packets.
func (s *sample) pcapOnly() *sample {
	c := *s
	c.cfg.Format = FormatPcap
	c.ifaces = s.ifaces[:1]
	c.packets = nil
	for _, p := range s.packets {
		if p.Interface == 0 {
			c.packets = append(c.packets, p)
		}
	}
	c.stats = map[int]Stats{0: s.stats[0]}
	return &c
}

// write writes the sample: the names after the first packet, the
// statistics at the end.
func (s *sample) write(t testing.TB) []byte {
	t.Helper()
	var out bytes.Buffer
	cfg := s.cfg
	w, err := NewWriter(&out, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, ifc := range s.ifaces {
		id, err := w.AddInterface(ifc)
		if err != nil || id != i {
			t.Fatalf("AddInterface(%d) = %d, %v", i, id, err)
		}
	}
	for i := range s.packets {
		if err := w.WritePacket(&s.packets[i]); err != nil {
			t.Fatalf("WritePacket(%d): %v", i, err)
		}
		if i == 0 {
			for _, n := range s.names {
				if err := w.AddNames(n.addr, n.names...); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for i := range s.ifaces {
		if err := w.WriteStats(i, s.stats[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
