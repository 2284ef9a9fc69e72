package summary

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// oracleKey is what gopacket's full decoder (gopacket.NewPacket, every
// layer it knows) says a frame's conversation is; ok false means "not a
// conversation" (not IP, or ICMP chatter). skip reports frames where the
// two are known to differ by design (see oracle).
type oracleKey struct {
	ok            bool
	proto         Proto
	local, remote netip.AddrPort
	payload       int
	skip          string
}

// oracle decodes a frame with gopacket, independently of parseFrame.
func oracle(data []byte, outbound bool) oracleKey {
	p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
	ls := p.Layers()
	// gopacket keeps a layer whose decoding failed (followed by a
	// DecodeFailure), so decode each again on its own to tell.
	failed := func(i int) bool {
		data := ls[i-1].LayerPayload()
		var dl gopacket.DecodingLayer
		switch ls[i].(type) {
		case *layers.IPv4:
			dl = &layers.IPv4{}
		case *layers.IPv6:
			dl = &layers.IPv6{}
		case *layers.TCP:
			dl = &layers.TCP{}
		case *layers.UDP:
			dl = &layers.UDP{}
		case *layers.ICMPv4:
			dl = &layers.ICMPv4{}
		case *layers.ICMPv6:
			dl = &layers.ICMPv6{}
		case *layers.IPv6Fragment:
			dl = &layers.IPv6Fragment{}
		default: // other extension headers: a DecodeFailure follows a failed one
			return i+1 < len(ls) && ls[i+1].LayerType() == gopacket.LayerTypeDecodeFailure
		}
		return dl.DecodeFromBytes(data, gopacket.NilDecodeFeedback) != nil
	}
	byDesign := func() (string, bool) {
		el := p.ErrorLayer()
		if el == nil {
			return "", false
		}
		msg := el.Error().Error()
		// gopacket refuses IPv6 with payload length 0 and no jumbo
		// option; Linux sends such packets (BIG TCP strips the hop-by-hop
		// header before packet sockets see them), and parseFrame counts
		// them. It also validates hop-by-hop and destination option TLVs,
		// which parseFrame leaves to the kernel.
		if strings.Contains(msg, "IPv6 length 0") || strings.Contains(msg, "jumbo") || strings.Contains(msg, "IPv6 header option") || strings.Contains(msg, "IPv6 option") || strings.Contains(msg, "TLV") {
			return strings.TrimRight(msg, "0123456789 ()<>"), true
		}
		return "", false
	}
	i := 0
	for i < len(ls) && ls[i].LayerType() != layers.LayerTypeIPv4 && ls[i].LayerType() != layers.LayerTypeIPv6 {
		i++
	}
	if i == len(ls) || failed(i) {
		if msg, ok := byDesign(); ok {
			return oracleKey{skip: msg}
		}
		return oracleKey{}
	}
	var src, dst netip.Addr
	switch ip := ls[i].(type) {
	case *layers.IPv4:
		src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
	case *layers.IPv6:
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
	}
	i++
	for i < len(ls) {
		t := ls[i].LayerType()
		if t != layers.LayerTypeIPv6HopByHop && t != layers.LayerTypeIPv6Routing &&
			t != layers.LayerTypeIPv6Destination && t != layers.LayerTypeIPv6Fragment {
			break
		}
		if failed(i) { // an extension header cut short: no transport
			if msg, ok := byDesign(); ok {
				return oracleKey{skip: msg}
			}
			i = len(ls)
			break
		}
		// NewPacket takes whatever follows a fragment header for a
		// fragment, where its own DecodingLayer (and RFC 6946) carry on
		// after an atomic one: carry on as they do.
		if fr, ok := ls[i].(*layers.IPv6Fragment); ok && fr.FragmentOffset == 0 && !fr.MoreFragments {
			rest := gopacket.NewPacket(fr.Payload, fr.NextHeader.LayerType(), gopacket.Default)
			ls = append(ls[:i+1:i+1], rest.Layers()...)
			p = rest
		}
		i++
	}
	k := oracleKey{ok: true, proto: ProtoOther}
	var sport, dport uint16
	if i < len(ls) && !failed(i) {
		switch l := ls[i].(type) {
		case *layers.TCP:
			k.proto, sport, dport, k.payload = ProtoTCP, uint16(l.SrcPort), uint16(l.DstPort), len(l.Payload)
		case *layers.UDP:
			k.proto, sport, dport, k.payload = ProtoUDP, uint16(l.SrcPort), uint16(l.DstPort), len(l.Payload)
		case *layers.ICMPv4:
			switch l.TypeCode.Type() {
			case layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4TypeSourceQuench, layers.ICMPv4TypeRedirect,
				layers.ICMPv4TypeTimeExceeded, layers.ICMPv4TypeParameterProblem:
				return oracleKey{}
			}
			k.proto = ProtoICMP
		case *layers.ICMPv6:
			if t := l.TypeCode.Type(); t < 128 || (t >= 130 && t <= 137) || t == 143 {
				return oracleKey{}
			}
			k.proto = ProtoICMPv6
		}
	}
	if outbound {
		k.local, k.remote = netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	} else {
		k.local, k.remote = netip.AddrPortFrom(dst, dport), netip.AddrPortFrom(src, sport)
	}
	return k
}

// genFrame builds a random frame: mostly well-formed layers serialized by
// gopacket (0-2 VLAN tags, IPv4 with or without options and fragment
// fields, IPv6 with extension headers, TCP with options, UDP, ICMP, other
// protocols), then sometimes cut short or with bytes overwritten, and
// sometimes garbage behind a real EtherType.
func genFrame(r *rand.Rand) []byte {
	addrs4 := []net.IP{{10, 0, 0, 1}, {10, 0, 0, 2}, {198, 51, 100, 80}}
	addrs6 := []net.IP{net.ParseIP("fd6e::2"), net.ParseIP("fd77:80::80"), net.ParseIP("fe80::1")}
	ports := []uint16{53, 80, 443, 50000, 50001}
	pick := func(n int) int { return r.IntN(n) }

	if pick(20) == 0 { // garbage behind an EtherType that leads somewhere
		b := make([]byte, 14+pick(80))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		et := []uint16{etherIPv4, etherIPv6, etherDot1Q, etherQinQ}[pick(4)]
		binary.BigEndian.PutUint16(b[12:], et)
		return b
	}

	var ls []gopacket.SerializableLayer
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	ls = append(ls, eth)
	tags := pick(3)
	v6 := pick(2) == 0
	ipType := layers.EthernetTypeIPv4
	if v6 {
		ipType = layers.EthernetTypeIPv6
	}
	if tags == 0 {
		eth.EthernetType = ipType
	} else {
		eth.EthernetType = []layers.EthernetType{layers.EthernetTypeDot1Q, layers.EthernetTypeQinQ}[pick(2)]
		for t := 0; t < tags; t++ {
			next := layers.EthernetTypeDot1Q
			if t == tags-1 {
				next = ipType
			}
			ls = append(ls, &layers.Dot1Q{VLANIdentifier: uint16(pick(4096)), Type: next})
		}
	}

	// The transport layer, serialized on its own so that extension
	// headers can be put in front of it.
	protos := []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP, layers.IPProtocolICMPv4, layers.IPProtocolICMPv6, 47, 132}
	proto := protos[pick(len(protos))]
	if pick(3) != 0 { // mostly the family's own ICMP
		if v6 && proto == layers.IPProtocolICMPv4 {
			proto = layers.IPProtocolICMPv6
		} else if !v6 && proto == layers.IPProtocolICMPv6 {
			proto = layers.IPProtocolICMPv4
		}
	}
	var l4 []gopacket.SerializableLayer
	sp, dp := ports[pick(len(ports))], ports[pick(len(ports))]
	switch proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), Seq: r.Uint32(), Window: 1000,
			SYN: pick(3) == 0, ACK: pick(2) == 0, RST: pick(8) == 0, FIN: pick(8) == 0, PSH: pick(2) == 0}
		for n := pick(4); n > 0; n-- {
			tcp.Options = append(tcp.Options, []layers.TCPOption{
				{OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 180}},
				{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)},
			}[pick(3)])
		}
		l4 = append(l4, tcp)
	case layers.IPProtocolUDP:
		l4 = append(l4, &layers.UDP{SrcPort: layers.UDPPort(sp), DstPort: layers.UDPPort(dp)})
	case layers.IPProtocolICMPv4:
		l4 = append(l4, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(uint8([]int{0, 3, 8, 11, 13, 5, 42}[pick(7)]), 0), Id: 1})
	case layers.IPProtocolICMPv6:
		l4 = append(l4, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(uint8([]int{1, 128, 129, 133, 135, 143, 200}[pick(7)]), 0)})
	default:
		l4 = append(l4, gopacket.Payload{1, 2, 3, 4, 5, 6, 7, 8})
	}
	if n := pick(60); n > 0 {
		pl := make([]byte, n)
		for i := range pl {
			pl[i] = byte(r.Uint32())
		}
		l4 = append(l4, gopacket.Payload(pl))
	}
	tb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(tb, gopacket.SerializeOptions{FixLengths: true}, l4...); err != nil {
		panic(err)
	}
	body := tb.Bytes()

	if v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: addrs6[pick(3)], DstIP: addrs6[pick(3)], NextHeader: proto}
		// Extension headers in front of the transport: hop-by-hop (PadN),
		// routing, destination options (PadN), fragment.
		var ext []byte
		next := proto
		for n := pick(4); n > 0; n-- {
			h := []layers.IPProtocol{layers.IPProtocolIPv6HopByHop, layers.IPProtocolIPv6Routing, layers.IPProtocolIPv6Destination, layers.IPProtocolIPv6Fragment}[pick(4)]
			var e []byte
			switch h {
			case layers.IPProtocolIPv6Fragment:
				e = []byte{byte(next), 0, 0, 0, 0, 0, 0, 1}
				if pick(2) == 0 { // a real fragment: offset or more-fragments
					binary.BigEndian.PutUint16(e[2:], uint16(pick(100))<<3|uint16(pick(2)))
				}
			case layers.IPProtocolIPv6Routing:
				e = []byte{byte(next), 0, 0, 0, 0, 0, 0, 0}
			default:
				e = []byte{byte(next), 0, 1, 4, 0, 0, 0, 0} // PadN
			}
			ext = append(e, ext...)
			next = h
		}
		ip.NextHeader = next
		ls = append(ls, ip, gopacket.Payload(append(ext, body...)))
	} else {
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: addrs4[pick(3)], DstIP: addrs4[pick(3)], Protocol: proto, Id: uint16(r.Uint32())}
		switch pick(6) {
		case 0:
			ip.Flags = layers.IPv4MoreFragments
		case 1:
			ip.FragOffset = uint16(1 + pick(100))
		}
		if pick(5) == 0 {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}}
		}
		ls = append(ls, ip, gopacket.Payload(body))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	switch pick(8) {
	case 0: // cut short anywhere
		b = b[:pick(len(b)+1)]
	case 1: // a few bytes overwritten
		for n := 1 + pick(3); n > 0; n-- {
			b[pick(len(b))] = byte(r.Uint32())
		}
	case 2: // Ethernet padding behind the packet
		b = append(b, make([]byte, 1+pick(30))...)
	}
	return b
}

// TestParseFrameOracle: parseFrame agrees with gopacket's full decoder on
// the conversation (protocol, addresses, ports), on what is not one, and
// on the transport payload length, over many random frames; and a table
// fed with them holds the same per-conversation counts as a Go map fed
// with gopacket's keys.
func TestParseFrameOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 200000
	f := NewFlows(&Config{MaxConversations: n})
	type counts struct{ pktsOut, pktsIn, bytesOut, bytesIn uint64 }
	want := map[string]*counts{}
	skipped, convs := map[string]int{}, 0
	for i := 0; i < n; i++ {
		b := genFrame(r)
		out := r.IntN(2) == 0
		o := oracle(b, out)
		var p parsed
		ok := parseFrame(b, out, &p)
		if o.skip != "" {
			skipped[o.skip]++
			continue
		}
		if ok != o.ok {
			t.Fatalf("frame %d % x: parseFrame %v, gopacket %v (%v)", i, b, ok, o.ok,
				gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default))
		}
		f.Account(b, len(b)+7, int64(i), out)
		if !ok {
			continue
		}
		convs++
		k := &p.key
		if k.proto() != o.proto || k.localAddrPort() != o.local || k.remoteAddrPort() != o.remote {
			t.Fatalf("frame %d % x: parseFrame %v %v %v, gopacket %v %v %v\n%v", i, b,
				k.proto(), k.localAddrPort(), k.remoteAddrPort(), o.proto, o.local, o.remote,
				gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default))
		}
		if (o.proto == ProtoTCP || o.proto == ProtoUDP) && p.payload != o.payload {
			t.Fatalf("frame %d % x: payload %d, gopacket %d", i, b, p.payload, o.payload)
		}
		id := fmt.Sprint(o.proto, o.local, o.remote)
		c := want[id]
		if c == nil {
			c = &counts{}
			want[id] = c
		}
		if out {
			c.pktsOut++
			c.bytesOut += uint64(len(b) + 7)
		} else {
			c.pktsIn++
			c.bytesIn += uint64(len(b) + 7)
		}
	}
	if f.Len() != len(want) {
		t.Errorf("table holds %d conversations, gopacket's map %d", f.Len(), len(want))
	}
	for i := range f.ents {
		e := &f.ents[i]
		id := fmt.Sprint(e.key.proto(), e.key.localAddrPort(), e.key.remoteAddrPort())
		c := want[id]
		if c == nil {
			t.Errorf("table has %s, gopacket does not", id)
			continue
		}
		if *c != (counts{e.pktsOut, e.pktsIn, e.bytesOut, e.bytesIn}) {
			t.Errorf("%s: table %d/%d pkts %d/%d bytes, gopacket %+v", id, e.pktsOut, e.pktsIn, e.bytesOut, e.bytesIn, *c)
		}
	}
	total := 0
	for _, v := range skipped {
		total += v
	}
	t.Logf("%d frames, %d conversation packets in %d conversations; %d left out where the decoders differ by design: %v", n, convs, len(want), total, skipped)
	if total > n/50 {
		t.Errorf("%d frames left out of the comparison, more than 2%%", total)
	}
}

// FuzzParseFrame: parseFrame never panics, what it reports lies within the
// frame, the two directions give mirrored keys, and it agrees with
// gopacket wherever the oracle test holds them to it.
func FuzzParseFrame(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 64; i++ {
		f.Add(genFrame(r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var out, in parsed
		ok := parseFrame(b, true, &out)
		if ok != parseFrame(b, false, &in) {
			t.Fatal("direction changed whether the frame is a conversation")
		}
		if !ok {
			return
		}
		if out.key.l0 != in.key.r0 || out.key.l1 != in.key.r1 || out.key.r0 != in.key.l0 || out.key.r1 != in.key.l1 ||
			out.key.localPort() != in.key.remotePort() || out.key.remotePort() != in.key.localPort() || out.key.proto() != in.key.proto() {
			t.Fatalf("keys not mirrored: %+v %+v", out.key, in.key)
		}
		switch out.key.proto() {
		case ProtoTCP, ProtoUDP:
			if out.payload < 0 || out.l4off < 0 || out.l4off+out.payload > len(b) {
				t.Fatalf("payload %d at %d in a %d-byte frame", out.payload, out.l4off, len(b))
			}
		default:
			if out.key.localPort() != 0 || out.key.remotePort() != 0 || out.payload != 0 {
				t.Fatalf("%v with ports or payload: %+v", out.key.proto(), out)
			}
		}
		if o := oracle(b, true); o.skip == "" {
			if !o.ok || o.proto != out.key.proto() || o.local != out.key.localAddrPort() || o.remote != out.key.remoteAddrPort() {
				t.Fatalf("parseFrame %v %v %v, gopacket %+v", out.key.proto(), out.key.localAddrPort(), out.key.remoteAddrPort(), o)
			}
		}
		// The frame, then every shorter head of it: once the first has
		// made its conversation hot, the others try the hot path.
		fl := NewFlows(&Config{MaxConversations: 2})
		for k := len(b); k >= 0; k-- {
			if n := fl.Account(b[:k], k, 1, true); n < 0 || n > k {
				t.Fatalf("Account wants %d bytes of a %d-byte frame", n, k)
			}
		}
	})
}
