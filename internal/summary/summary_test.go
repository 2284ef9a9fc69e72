package summary

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/dns/dnsmessage"
)

var (
	local  = netip.MustParseAddr("10.213.0.1")
	dnsSrv = netip.MustParseAddr("10.213.0.0")
	web    = netip.MustParseAddr("198.51.100.80")
	local6 = netip.MustParseAddr("fd6e::2")
	web6   = netip.MustParseAddr("fd77:80::80")
)

type pkt struct {
	src, dst     netip.Addr
	sport, dport uint16
	tcp          *layers.TCP // flags set; ports filled in
	udp          bool
	icmp         bool
	payload      []byte
}

func frame(t testing.TB, p pkt) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	var ls []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	if p.src.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: p.src.AsSlice(), DstIP: p.dst.AsSlice()}
		nl = ip
		ls = append(ls, eth, ip)
		switch {
		case p.tcp != nil:
			ip.Protocol = layers.IPProtocolTCP
		case p.udp:
			ip.Protocol = layers.IPProtocolUDP
		default:
			ip.Protocol = layers.IPProtocolICMPv4
		}
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: p.src.AsSlice(), DstIP: p.dst.AsSlice()}
		nl = ip
		ls = append(ls, eth, ip)
		switch {
		case p.tcp != nil:
			ip.NextHeader = layers.IPProtocolTCP
		case p.udp:
			ip.NextHeader = layers.IPProtocolUDP
		default:
			ip.NextHeader = layers.IPProtocolICMPv6
		}
	}
	switch {
	case p.tcp != nil:
		p.tcp.SrcPort, p.tcp.DstPort, p.tcp.Window = layers.TCPPort(p.sport), layers.TCPPort(p.dport), 1000
		p.tcp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, p.tcp)
	case p.udp:
		u := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
		u.SetNetworkLayerForChecksum(nl)
		ls = append(ls, u)
	case p.src.Is4():
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1})
	default:
		i := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
		i.SetNetworkLayerForChecksum(nl)
		ls = append(ls, i, gopacket.Payload([]byte{0, 1, 0, 1}))
	}
	if p.payload != nil {
		ls = append(ls, gopacket.Payload(p.payload))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type feeder struct {
	t  testing.TB
	tr *Tracker
	ts int64
}

func (f *feeder) send(p pkt, outbound bool) {
	b := frame(f.t, p)
	f.ts += 1000
	f.tr.Observe(b, len(b), f.ts, outbound)
}

func dnsMsg(t testing.TB, id uint16, name string, qt dnsmessage.Type, resp bool, rcode dnsmessage.RCode, answers func(*dnsmessage.Builder)) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: resp, RCode: rcode})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: qt, Class: dnsmessage.ClassINET})
	if answers != nil {
		b.StartAnswers()
		answers(&b)
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func hdr(name string) dnsmessage.ResourceHeader {
	return dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name + "."), Class: dnsmessage.ClassINET, TTL: 60}
}

func find(r *Report, proto, remote string, port uint16) *Connection {
	for i, c := range r.Connections {
		if c.Proto == proto && c.RemoteAddr == remote && c.RemotePort == port {
			return &r.Connections[i]
		}
	}
	return nil
}

func TestDNSAndConnections(t *testing.T) {
	tr := New(nil)
	f := &feeder{t: t, tr: tr}
	udpOut := func(id uint16, msg []byte) {
		f.send(pkt{src: local, dst: dnsSrv, sport: 40000 + id, dport: 53, udp: true, payload: msg}, true)
	}
	udpIn := func(id uint16, msg []byte) {
		f.send(pkt{src: dnsSrv, dst: local, sport: 53, dport: 40000 + id, udp: true, payload: msg}, false)
	}

	// A via a CNAME chain: alias -> mid -> www.
	udpOut(1, dnsMsg(t, 1, "alias.example.test", dnsmessage.TypeA, false, 0, nil))
	udpIn(1, dnsMsg(t, 1, "alias.example.test", dnsmessage.TypeA, true, 0, func(b *dnsmessage.Builder) {
		b.CNAMEResource(hdr("alias.example.test"), dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName("mid.example.test.")})
		b.CNAMEResource(hdr("mid.example.test"), dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName("www.example.test.")})
		b.AResource(hdr("www.example.test"), dnsmessage.AResource{A: web.As4()})
	}))
	// AAAA.
	udpOut(2, dnsMsg(t, 2, "v6.example.test", dnsmessage.TypeAAAA, false, 0, nil))
	udpIn(2, dnsMsg(t, 2, "v6.example.test", dnsmessage.TypeAAAA, true, 0, func(b *dnsmessage.Builder) {
		b.AAAAResource(hdr("v6.example.test"), dnsmessage.AAAAResource{AAAA: web6.As16()})
	}))
	// NXDOMAIN, and a query never answered.
	udpOut(3, dnsMsg(t, 3, "nx.example.test", dnsmessage.TypeA, false, 0, nil))
	udpIn(3, dnsMsg(t, 3, "nx.example.test", dnsmessage.TypeA, true, dnsmessage.RCodeNameError, nil))
	udpOut(4, dnsMsg(t, 4, "silent.example.test", dnsmessage.TypeA, false, 0, nil))

	// TCP established with an HTTP request to web:80.
	syn := func(fl layers.TCP) *layers.TCP { return &fl }
	f.send(pkt{src: local, dst: web, sport: 50000, dport: 80, tcp: syn(layers.TCP{SYN: true})}, true)
	f.send(pkt{src: web, dst: local, sport: 80, dport: 50000, tcp: syn(layers.TCP{SYN: true, ACK: true})}, false)
	f.send(pkt{src: local, dst: web, sport: 50000, dport: 80, tcp: syn(layers.TCP{ACK: true, PSH: true}),
		payload: []byte("GET / HTTP/1.1\r\nHost: www.example.test:80\r\nUser-Agent: x\r\n\r\n")}, true)
	// Refused: SYN, RST/ACK.
	f.send(pkt{src: local, dst: web, sport: 50001, dport: 9, tcp: syn(layers.TCP{SYN: true})}, true)
	f.send(pkt{src: web, dst: local, sport: 9, dport: 50001, tcp: syn(layers.TCP{RST: true, ACK: true})}, false)
	// No answer: SYN twice.
	f.send(pkt{src: local, dst: web, sport: 50002, dport: 81, tcp: syn(layers.TCP{SYN: true})}, true)
	f.send(pkt{src: local, dst: web, sport: 50002, dport: 81, tcp: syn(layers.TCP{SYN: true})}, true)
	// Mid-stream flow.
	f.send(pkt{src: web, dst: local, sport: 443, dport: 50003, tcp: syn(layers.TCP{ACK: true}), payload: []byte("data")}, false)
	// UDP without answer, over IPv6.
	f.send(pkt{src: local6, dst: web6, sport: 5000, dport: 7, udp: true, payload: []byte("hi")}, true)
	// ICMP echo answered, ICMPv6 echo unanswered.
	f.send(pkt{src: local, dst: web, icmp: true}, true)
	f.send(pkt{src: web, dst: local, icmp: true}, false)
	f.send(pkt{src: local6, dst: web6, icmp: true}, true)
	// An inbound TCP connection to the program.
	f.send(pkt{src: web, dst: local, sport: 60000, dport: 8080, tcp: syn(layers.TCP{SYN: true})}, false)
	f.send(pkt{src: local, dst: web, sport: 8080, dport: 60000, tcp: syn(layers.TCP{SYN: true, ACK: true})}, true)

	r := tr.Report(Meta{Command: []string{"prog"}, Started: time.Unix(0, 0), Ended: time.Unix(1, 0)})
	check := func(proto, remote string, port uint16, dir, state string, names ...string) *Connection {
		t.Helper()
		c := find(r, proto, remote, port)
		if c == nil {
			t.Fatalf("no %s connection to %s:%d in %+v", proto, remote, port, r.Connections)
		}
		if c.Direction != dir || c.State != state || strings.Join(c.Names, ",") != strings.Join(names, ",") {
			t.Errorf("%s %s:%d = %s %s %v; want %s %s %v", proto, remote, port, c.Direction, c.State, c.Names, dir, state, names)
		}
		return c
	}
	c := check("tcp", web.String(), 80, "outbound", "established", "alias.example.test", "www.example.test")
	if c.PacketsOut != 2 || c.PacketsIn != 1 {
		t.Errorf("packet counts %d/%d", c.PacketsOut, c.PacketsIn)
	}
	check("tcp", web.String(), 9, "outbound", "refused", "alias.example.test", "www.example.test")
	check("tcp", web.String(), 81, "outbound", "no answer", "alias.example.test", "www.example.test")
	check("tcp", web.String(), 443, "outbound", "partial", "alias.example.test", "www.example.test")
	check("udp", web6.String(), 7, "outbound", "no answer", "v6.example.test")
	check("udp", dnsSrv.String(), 53, "outbound", "answered")
	check("icmp", web.String(), 0, "outbound", "answered", "alias.example.test", "www.example.test")
	check("icmpv6", web6.String(), 0, "outbound", "no answer", "v6.example.test")
	check("tcp", web.String(), 60000, "inbound", "established", "alias.example.test", "www.example.test")
	if r.Connections[len(r.Connections)-1].Direction != "inbound" {
		t.Errorf("inbound not listed last")
	}
	wantFail := []Failure{{"nx.example.test", "A", "NXDOMAIN"}, {"silent.example.test", "A", "no answer"}}
	if len(r.DNSFailures) != 2 || r.DNSFailures[0] != wantFail[0] || r.DNSFailures[1] != wantFail[1] {
		t.Errorf("dns failures = %+v, want %+v", r.DNSFailures, wantFail)
	}
	var text bytes.Buffer
	r.WriteText(&text, "")
	for _, want := range []string{"Outbound connections:", "alias.example.test, www.example.test (198.51.100.80)", "1 refused", "Inbound connections:", "DNS lookups that failed:", "nx.example.test", "NXDOMAIN"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"command", "exit_status", "started", "ended", "packets", "dropped", "connections", "dns_failures", "untracked_conversations"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	conn := doc["connections"].([]any)[0].(map[string]any)
	for _, k := range []string{"proto", "direction", "remote_addr", "remote_port", "local_port", "names", "packets_out", "packets_in", "bytes_out", "bytes_in", "first_seen", "last_seen", "state"} {
		if _, ok := conn[k]; !ok {
			t.Errorf("JSON connection lacks %q", k)
		}
	}
}

func TestDNSOverTCPSplit(t *testing.T) {
	tr := New(nil)
	f := &feeder{t: t, tr: tr}
	resp := dnsMsg(t, 9, "tcp.example.test", dnsmessage.TypeA, true, 0, func(b *dnsmessage.Builder) {
		b.AResource(hdr("tcp.example.test"), dnsmessage.AResource{A: web.As4()})
	})
	stream := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
	stream = append(stream, resp...)
	ack := func(seq int) *layers.TCP { return &layers.TCP{ACK: true, PSH: true, Seq: uint32(1e9 + seq)} }
	for i := 0; i < len(stream); i += 7 {
		end := min(i+7, len(stream))
		f.send(pkt{src: dnsSrv, dst: local, sport: 53, dport: 41000, tcp: ack(i), payload: stream[i:end]}, false)
	}
	if n := tr.Names().Names()[web]; len(n) != 1 || n[0] != "tcp.example.test" {
		t.Fatalf("names from DNS over TCP = %v", n)
	}
}

// TestDNSOverTCPRetransmitted: segments sent again, whole or overlapping
// what came before, add only their new bytes (sequence numbers wrap around
// 2^32 on the way); a stream with a segment missing is given up, without
// learning anything wrong from the bytes after the gap.
func TestDNSOverTCPRetransmitted(t *testing.T) {
	resp := func(name string, a netip.Addr) []byte {
		m := dnsMsg(t, 9, name, dnsmessage.TypeA, true, 0, func(b *dnsmessage.Builder) {
			b.AResource(hdr(name), dnsmessage.AResource{A: a.As4()})
		})
		return append(binary.BigEndian.AppendUint16(nil, uint16(len(m))), m...)
	}
	other := netip.MustParseAddr("198.51.100.99")
	stream := append(resp("one.example.test", web), resp("two.example.test", other)...)
	const isn uint32 = 1<<32 - 20 // wraps inside the first message
	seg := func(f *feeder, from, to, port int) {
		f.send(pkt{src: dnsSrv, dst: local, sport: 53, dport: uint16(port),
			tcp: &layers.TCP{ACK: true, PSH: true, Seq: isn + uint32(from)}, payload: stream[from:to]}, false)
	}

	tr := New(nil)
	f := &feeder{t: t, tr: tr}
	seg(f, 0, 10, 41001)
	seg(f, 0, 10, 41001) // the same again
	seg(f, 5, 30, 41001) // overlapping
	seg(f, 30, 31, 41001)
	seg(f, 10, 31, 41001) // all old
	seg(f, 31, len(stream), 41001)
	names := tr.Names().Names()
	if n := names[web]; len(n) != 1 || n[0] != "one.example.test" {
		t.Errorf("first message: names %v", n)
	}
	if n := names[other]; len(n) != 1 || n[0] != "two.example.test" {
		t.Errorf("second message: names %v", n)
	}

	tr = New(nil)
	f = &feeder{t: t, tr: tr}
	first := len(resp("one.example.test", web))
	seg(f, 0, 10, 41002)
	seg(f, 20, first+4, 41002) // bytes 10..20 never came
	seg(f, first+4, len(stream), 41002)
	if n := tr.Names().Names(); len(n) != 0 {
		t.Errorf("names learned from a stream with a gap: %v", n)
	}

	// More streams than are followed at once: finished ones make room.
	tr = New(nil)
	f = &feeder{t: t, tr: tr}
	for port := 0; port < maxStreams+10; port++ {
		seg(f, 0, first, 20000+port)
	}
	last := resp("last.example.test", other)
	f.send(pkt{src: dnsSrv, dst: local, sport: 53, dport: 19999,
		tcp: &layers.TCP{ACK: true, PSH: true, Seq: 7}, payload: last}, false)
	if n := tr.Names().Names()[other]; len(n) != 1 || n[0] != "last.example.test" {
		t.Fatalf("stream %d: names %v", maxStreams+11, n)
	}
	if got := len(tr.names.streams); got > maxStreams {
		t.Errorf("%d streams kept, at most %d", got, maxStreams)
	}
}

func TestSNI(t *testing.T) {
	c1, c2 := net.Pipe()
	go func() {
		tls.Client(c1, &tls.Config{ServerName: "api.example.test", InsecureSkipVerify: true}).Handshake()
	}()
	hello := make([]byte, 4096)
	n, _ := c2.Read(hello)
	c2.Close()
	c1.Close()
	tr := New(nil)
	f := &feeder{t: t, tr: tr}
	f.send(pkt{src: local, dst: web, sport: 50000, dport: 80, tcp: &layers.TCP{ACK: true, PSH: true}, payload: []byte("GET / HTTP/1.1\r\n\r\n")}, true)
	if tr.Names().TLSSeen() {
		t.Error("TLS seen in plain HTTP")
	}
	f.send(pkt{src: local, dst: web, sport: 50000, dport: 443, tcp: &layers.TCP{ACK: true, PSH: true}, payload: hello[:n]}, true)
	if names := tr.Names().Names()[web]; len(names) != 1 || names[0] != "api.example.test" {
		t.Fatalf("SNI names = %v", names)
	}
	if !tr.Names().TLSSeen() {
		t.Error("a ClientHello, but no TLS seen")
	}
	if sni([]byte{22, 3, 1, 0, 5, 1, 0}) != "" || sni(hello[:n/2]) != "" {
		t.Fatal("sni of a truncated hello returned a name")
	}
}

func TestHTTPHost(t *testing.T) {
	for in, want := range map[string]string{
		"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n":        "a.test",
		"POST /x HTTP/1.1\r\nhost: B.Test:8080\r\n\r\n": "b.test",
		"GET / HTTP/1.1\r\nHost: [fd00::1]:80\r\n\r\n":  "fd00::1",
		"GET / HTTP/1.1\r\nX: y\r\n\r\n":                "",
		"\x16\x03\x01 not http\r\nHost: nope\r\n\r\n":   "",
		// Cut by a snap length: the last line may be cut too.
		"GET / HTTP/1.1\r\nHost: ww":                       "",
		"GET / HTTP/1.1\r\nHost: a.test\r\nUser-Agent: cu": "a.test",
	} {
		if got := httpHost([]byte(in)); got != want {
			t.Errorf("httpHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCap: a million distinct flows keep the table at its cap and count the
// rest.
func TestCap(t *testing.T) {
	tr := New(&Config{MaxConversations: 1000})
	b := frame(t, pkt{src: local, dst: web, sport: 1, dport: 2, udp: true, payload: []byte("x")})
	const n = 1_000_000
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint32(b[30:], uint32(i)) // distinct destination
		tr.Observe(b, len(b), int64(i), true)
	}
	f := tr.Flows()
	if f.Len() != 1000 || f.UntrackedPackets() != n-1000 {
		t.Fatalf("table %d, untracked packets %d", f.Len(), f.UntrackedPackets())
	}
	// The count of untracked conversations is an estimate (linear
	// counting); at this load it is within a per cent.
	if u := float64(f.Untracked()); u < 0.99*(n-1000) || u > 1.01*(n-1000) {
		t.Fatalf("untracked conversations %v, want about %d", u, n-1000)
	}
}

// TestAccountAllocs: the capture path's part costs no allocation, for a
// packet of a known conversation, of a new one, and of one beyond the cap.
func TestAccountAllocs(t *testing.T) {
	const max = 1 << 14
	f := NewFlows(&Config{MaxConversations: max})
	b := frame(t, pkt{src: local, dst: web, sport: 50000, dport: 80, tcp: &layers.TCP{ACK: true}, payload: bytes.Repeat([]byte{1}, 100)})
	b6 := frame(t, pkt{src: local6, dst: web6, sport: 50000, dport: 80, udp: true, payload: []byte{1}})
	f.Account(b, len(b), 1, true)
	if a := testing.AllocsPerRun(1000, func() { f.Account(b, len(b), 2, true) }); a != 0 {
		t.Errorf("Account of a known conversation allocates %v times", a)
	}
	port := uint16(0)
	newFlow := func() {
		port++
		binary.BigEndian.PutUint16(b6[54:], port) // a new source port
		f.Account(b6, len(b6), 3, true)
	}
	if a := testing.AllocsPerRun(max/2, newFlow); a != 0 {
		t.Errorf("Account of a new conversation allocates %v times", a)
	}
	for f.Len() < max {
		newFlow()
	}
	if a := testing.AllocsPerRun(1000, newFlow); a != 0 || f.UntrackedPackets() == 0 {
		t.Errorf("Account beyond the cap allocates %v times (%d untracked)", a, f.UntrackedPackets())
	}
}

// TestHotPathCutShort: frames of a hot conversation cut short are counted
// as parseFrame says, not read past their end.
func TestHotPathCutShort(t *testing.T) {
	for _, p := range []pkt{
		{src: local, dst: web, sport: 50000, dport: 80, tcp: &layers.TCP{ACK: true}, payload: []byte("0123456789")},
		{src: local, dst: web, sport: 50000, dport: 80, udp: true, payload: []byte("0123456789")},
	} {
		b := frame(t, p)
		f := NewFlows(nil)
		f.Account(b, len(b), 1, true)
		f.Account(b, len(b), 2, true) // hot now
		var want parsed
		for k := len(b); k >= 0; k-- {
			f.Account(b[:k], k, 3, true)
		}
		for k := len(b); k >= 0; k-- {
			if parseFrame(b[:k], true, &want) && want.key.eq(&f.ents[0].key) {
				continue
			}
			// b[:k] is not of the conversation: it must not be counted there.
			if got := f.ents[0].pktsOut; got != uint64(2+len(b)-k) {
				t.Errorf("%v: %d packets counted for the conversation, want %d (frames cut to %d bytes and less are not of it)", f.ents[0].key.proto(), got, 2+len(b)-k, k)
			}
			break
		}
	}
}

func TestObserveAllocs(t *testing.T) {
	tr := New(nil)
	b := frame(t, pkt{src: local, dst: web, sport: 50000, dport: 80, tcp: &layers.TCP{ACK: true}, payload: bytes.Repeat([]byte{1}, 1400)})
	tr.Observe(b, len(b), 1, true)
	if a := testing.AllocsPerRun(1000, func() { tr.Observe(b, len(b), 2, true) }); a != 0 {
		t.Fatalf("Observe of a known flow allocates %v times", a)
	}
}

func FuzzObserve(f *testing.F) {
	f.Add(frame(f, pkt{src: local, dst: dnsSrv, sport: 1, dport: 53, udp: true, payload: []byte{0, 1, 2}}))
	f.Add(frame(f, pkt{src: local, dst: web, sport: 1, dport: 443, tcp: &layers.TCP{ACK: true}, payload: []byte{22, 3, 1, 0, 9, 1, 0, 0, 5}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := New(&Config{MaxConversations: 4})
		tr.Observe(b, len(b), 1, true)
		tr.Observe(b, len(b), 2, false)
		tr.Report(Meta{}).WriteText(&bytes.Buffer{}, "")
	})
}

func BenchmarkObserve(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(map[int]string{64: "64", 1500: "1500"}[size], func(b *testing.B) {
			tr := New(nil)
			pl := max(size-54, 0)
			fr := frame(b, pkt{src: local, dst: web, sport: 50000, dport: 80, tcp: &layers.TCP{ACK: true}, payload: make([]byte, pl)})
			b.SetBytes(int64(len(fr)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				tr.Observe(fr, len(fr), int64(i), i&1 == 0)
			}
		})
	}
}

// BenchmarkMillionFlows reports the heap a full table holds: a million
// distinct flows against the default cap.
func BenchmarkMillionFlows(b *testing.B) {
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tr := New(nil)
		fr := frame(b, pkt{src: local, dst: web, sport: 1, dport: 2, udp: true, payload: []byte("x")})
		for j := 0; j < 1_000_000; j++ {
			binary.BigEndian.PutUint32(fr[30:], uint32(j))
			tr.Observe(fr, len(fr), int64(j), true)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "MB-heap")
		b.ReportMetric(float64(tr.Flows().Len()), "tracked")
		runtime.KeepAlive(tr)
	}
}

// BenchmarkReport is the end of a busy trace: a full table to report and
// write as JSON.
func BenchmarkReport(b *testing.B) {
	tr := New(nil)
	fr := frame(b, pkt{src: local, dst: web, sport: 1, dport: 2, udp: true, payload: []byte("x")})
	for j := 0; j < DefaultMaxConversations; j++ {
		binary.BigEndian.PutUint32(fr[30:], uint32(j))
		tr.Observe(fr, len(fr), int64(j), true)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r := tr.Report(Meta{})
		if err := r.WriteJSON(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// TestWriteJSON: the hand-written encoding of connections decodes to what
// was written, escapes included, and the whole file is one JSON value.
func TestWriteJSON(t *testing.T) {
	ts := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	r := &Report{
		Command: []string{"sh", "-c", `echo "connections": []`}, Started: ts, Ended: ts.Add(time.Second),
		Packets: 3, Untracked: 1, UntrackedPackets: 2, NamePacketsSkipped: 4, Unattributed: new(uint64(1)),
		Connections: []Connection{
			{Proto: "tcp", Direction: "outbound", RemoteAddr: "fd77:80::80", RemotePort: 443, LocalPort: 50000,
				Names: []string{"a.test", "we\"ird\\\x01\u2028.test"}, PacketsOut: 1, PacketsIn: 2, BytesOut: 3, BytesIn: 4,
				FirstSeen: ts, LastSeen: ts.Add(time.Millisecond), State: "established",
				Pid: 12, Comm: "cu\"rl\x01", Cmdline: "curl -H 'X: \\\u2028' http://a.test/"},
			{Proto: "udp", Direction: "inbound", RemoteAddr: "10.0.0.1", Names: []string{}, FirstSeen: time.Unix(0, 0).UTC(), LastSeen: ts, State: "answered"},
		},
		DNSFailures: []Failure{},
	}
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got Report
	dec := json.NewDecoder(&b)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if dec.More() {
		t.Fatal("more than one JSON value")
	}
	want, _ := json.Marshal(r)
	have, _ := json.Marshal(&got)
	if !bytes.Equal(want, have) {
		t.Errorf("round trip:\n%s\nwant:\n%s", have, want)
	}
	var empty bytes.Buffer
	if err := (&Report{Connections: []Connection{}}).WriteJSON(&empty); err != nil || !json.Valid(empty.Bytes()) {
		t.Errorf("empty report: %v\n%s", err, empty.String())
	}
}

// TestNamePackets: Account hands the name decoder DNS (also when the
// table is full) and the first few payload segments a program sends on a
// TCP connection, and nothing else.
func TestNamePackets(t *testing.T) {
	f := NewFlows(&Config{MaxConversations: 3})
	ack := func() *layers.TCP { return &layers.TCP{ACK: true, PSH: true} }
	big := bytes.Repeat([]byte{'x'}, 20000)
	out := frame(t, pkt{src: local, dst: web, sport: 50000, dport: 443, tcp: ack(), payload: big})
	for i := 0; i < nameSegments; i++ {
		if n := f.Account(out, len(out), 1, true); n != 54+nameHead {
			t.Fatalf("outbound segment %d: %d bytes for the decoder, want %d", i, n, 54+nameHead)
		}
	}
	if n := f.Account(out, len(out), 1, true); n != 0 {
		t.Errorf("segment %d still goes to the decoder (%d bytes)", nameSegments, n)
	}
	in := frame(t, pkt{src: web, dst: local, sport: 443, dport: 50001, tcp: ack(), payload: []byte("hello")})
	if n := f.Account(in, len(in), 1, false); n != 0 {
		t.Errorf("inbound payload goes to the decoder")
	}
	bare := frame(t, pkt{src: local, dst: web, sport: 50002, dport: 443, tcp: &layers.TCP{SYN: true}})
	if n := f.Account(bare, len(bare), 1, true); n != 0 {
		t.Errorf("a segment without payload goes to the decoder")
	}
	// ACKs of a download make the conversation hot; its next request
	// still reaches the decoder.
	acks := frame(t, pkt{src: local, dst: web, sport: 50002, dport: 443, tcp: &layers.TCP{ACK: true}})
	for i := 0; i < 3; i++ {
		if n := f.Account(acks, len(acks), 2, true); n != 0 {
			t.Errorf("an ACK goes to the decoder")
		}
	}
	req := frame(t, pkt{src: local, dst: web, sport: 50002, dport: 443, tcp: ack(), payload: []byte("GET / HTTP/1.1\r\n\r\n")})
	if n := f.Account(req, len(req), 3, true); n != len(req) {
		t.Errorf("a request after hot ACKs: %d bytes for the decoder, want %d", n, len(req))
	}
	if e := &f.ents[2]; e.pktsOut != 5 || e.flags&fSynOut == 0 {
		t.Errorf("conversation after hot packets: %+v", e)
	}
	// The table (3) is full now.
	dns := frame(t, pkt{src: dnsSrv, dst: local, sport: 53, dport: 40000, udp: true, payload: []byte("answer")})
	if n := f.Account(dns, len(dns), 1, false); n != len(dns) || f.UntrackedPackets() != 1 {
		t.Errorf("DNS beyond the cap: %d bytes for the decoder, %d untracked", n, f.UntrackedPackets())
	}
	other := frame(t, pkt{src: local, dst: web, sport: 50003, dport: 443, tcp: ack(), payload: []byte("x")})
	if n := f.Account(other, len(other), 1, true); n != 0 {
		t.Errorf("TCP payload of an untracked conversation goes to the decoder")
	}
}

// TestNamePacketsServer: what the program sends on a connection its peer
// started (it serves) goes to no decoder, while a connection first seen
// mid-stream, which the program may have started, still does.
func TestNamePacketsServer(t *testing.T) {
	f := NewFlows(&Config{MaxConversations: 8})
	syn := frame(t, pkt{src: web, dst: local, sport: 50000, dport: 80, tcp: &layers.TCP{SYN: true}})
	f.Account(syn, len(syn), 1, false)
	resp := frame(t, pkt{src: local, dst: web, sport: 80, dport: 50000, tcp: &layers.TCP{ACK: true, PSH: true}, payload: []byte("HTTP/1.1 200 OK\r\n\r\n")})
	for i := 0; i < 3; i++ {
		if n := f.Account(resp, len(resp), int64(2+i), true); n != 0 {
			t.Errorf("a server's reply %d: %d bytes for the decoder", i, n)
		}
	}
	mid := frame(t, pkt{src: local, dst: web, sport: 50001, dport: 443, tcp: &layers.TCP{ACK: true, PSH: true}, payload: []byte("hello")})
	if n := f.Account(mid, len(mid), 5, true); n != len(mid) {
		t.Errorf("mid-stream, the program's ephemeral port: %d bytes for the decoder, want %d", n, len(mid))
	}
}

// BenchmarkAccount is the capture path's part of the summary alone: a
// UDP packet of one conversation, or of a new conversation every time
// (the table fills, then every packet is a miss: the worst case).
func BenchmarkAccount(b *testing.B) {
	for _, many := range []bool{false, true} {
		b.Run(map[bool]string{false: "one", true: "many"}[many], func(b *testing.B) {
			f := NewFlows(nil)
			fr := frame(b, pkt{src: local, dst: web, sport: 4000, dport: 9, udp: true, payload: make([]byte, 22)})
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if many {
					binary.BigEndian.PutUint32(fr[30:], uint32(i))
				}
				f.Account(fr, len(fr), int64(i), false)
			}
		})
	}
}

// TestWriteTextGroupsAndCaps: inbound rows are grouped by the program's
// own port, not the clients' ephemeral ones; a direction with more rows
// than fit at a glance keeps those that moved the most bytes, in order of
// appearance, and sums up the rest in one line; so do failed lookups.
func TestWriteTextGroupsAndCaps(t *testing.T) {
	var r Report
	for i := 0; i < 3; i++ { // one client, three connections to our port 8080
		r.Connections = append(r.Connections, Connection{Proto: "tcp", Direction: "inbound",
			RemoteAddr: "192.0.2.7", RemotePort: uint16(40000 + i), LocalPort: 8080, BytesIn: 100, State: "established"})
	}
	for i := 0; i < 100; i++ {
		r.Connections = append(r.Connections, Connection{Proto: "udp", Direction: "outbound",
			RemoteAddr: fmt.Sprintf("198.51.100.%d", i), RemotePort: 9, LocalPort: 5000,
			BytesOut: uint64(1000 + i), State: "answered"})
	}
	for i := 0; i < 45; i++ {
		r.DNSFailures = append(r.DNSFailures, Failure{Name: fmt.Sprintf("nx%d.example.test", i), Type: "A", RCode: "NXDOMAIN"})
	}
	var b strings.Builder
	if err := r.WriteText(&b, "--summary FILE lists them all"); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	if !regexp.MustCompile(`(?m)^  tcp     8080  192\.0\.2\.7 +3 conns`).MatchString(text) {
		t.Errorf("the three inbound connections to port 8080 are not one row:\n%s", text)
	}
	rows := regexp.MustCompile(`(?m)^  udp +9  198\.51\.100\.(\d+) `).FindAllStringSubmatch(text, -1)
	if len(rows) != maxTextRows {
		t.Fatalf("%d outbound rows, want %d:\n%s", len(rows), maxTextRows, text)
	}
	for i, m := range rows {
		if want := fmt.Sprint(60 + i); m[1] != want { // the 40 largest, in order of appearance
			t.Fatalf("row %d is 198.51.100.%s, want .%s", i, m[1], want)
		}
	}
	if !strings.Contains(text, "  ... and 60 more rows: 60 conns, ") {
		t.Errorf("no line for the 60 rows left out:\n%s", text)
	}
	if !strings.Contains(text, "nx39.example.test") || strings.Contains(text, "nx40.example.test") ||
		!strings.Contains(text, "  ... and 5 more (--summary FILE lists them all)") {
		t.Errorf("failed lookups not capped at %d:\n%s", maxTextRows, text)
	}
}

// BenchmarkDNSFailures is a program whose lookups keep failing, each for
// a new name: recording a failure must not cost a scan of all before it.
func BenchmarkDNSFailures(b *testing.B) {
	n := NewNames()
	names := make([]string, 1<<16)
	for i := range names {
		names[i] = fmt.Sprintf("host%d.nx.example.test", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		n.fail(names[i%len(names)], "A", "NXDOMAIN")
	}
}

// TestSnapLenCutsHeaders: frames cut inside their headers are in no
// conversation, and the report says the summary is incomplete; a frame
// cut only in its payload still counts.
func TestSnapLenCutsHeaders(t *testing.T) {
	f := NewFlows(nil)
	b := frame(t, pkt{src: local, dst: web, sport: 50000, dport: 80, tcp: &layers.TCP{SYN: true}, payload: []byte("0123456789")})
	f.Account(b[:1], len(b), 1, true)
	f.Account(b[:30], len(b), 2, true)
	f.Account(b[:len(b)-5], len(b), 3, true)
	if f.CutHeaders() != 2 || f.Len() != 1 {
		t.Fatalf("cut headers %d, conversations %d; want 2 and 1", f.CutHeaders(), f.Len())
	}
	r := NewReport(Meta{SnapLen: 30}, f, NewNames())
	var b2 strings.Builder
	r.WriteText(&b2, "")
	if !strings.Contains(b2.String(), "(incomplete: the snap length of 30 bytes cut the headers of 2 packets") || r.CutPackets != 2 {
		t.Errorf("report does not say it is incomplete:\n%s", b2.String())
	}
}

// TestProcesses: TakeNew hands out each conversation once, on the packet
// that added it, with its ends and who started it, as ConvOf reads them
// from the frame; the report carries the
// processes SetProcess named into the JSON fields and the text rows, and
// counts the TCP and UDP connections with none (ICMP has no socket to
// look up), but only when processes were looked for.
func TestProcesses(t *testing.T) {
	f := NewFlows(nil)
	acc := func(p pkt, out bool) (NewConv, bool) {
		b := frame(t, p)
		f.Account(b, len(b), 1, out)
		return f.TakeNew()
	}
	curl := Process{Pid: 12, Comm: "curl", Cmdline: "curl -s http://web/"}
	wget := Process{Pid: 13, Comm: "wget", Cmdline: "wget -q http://web/"}
	nc := Process{Pid: 14, Comm: "nc", Cmdline: "nc -l 8080"}
	c, ok := acc(pkt{src: local, dst: web, sport: 40001, dport: 80, tcp: &layers.TCP{SYN: true}}, true)
	if !ok || c.Proto != ProtoTCP || !c.Outbound || c.Local != netip.AddrPortFrom(local, 40001) || c.Remote != netip.AddrPortFrom(web, 80) {
		t.Fatalf("outbound SYN: %+v, %v", c, ok)
	}
	f.SetProcess(c, curl)
	syn := frame(t, pkt{src: local, dst: web, sport: 40001, dport: 80, tcp: &layers.TCP{SYN: true}})
	if cc, ok := ConvOf(syn, true); !ok || cc.Proto != c.Proto || cc.Local != c.Local || cc.Remote != c.Remote || !cc.Outbound {
		t.Errorf("ConvOf(the SYN) = %+v, %v; TakeNew said %+v", cc, ok, c)
	} else {
		f.SetProcess(cc, wget) // not the table's: nothing recorded
	}
	if c, ok := acc(pkt{src: web, dst: local, sport: 80, dport: 40001, tcp: &layers.TCP{SYN: true, ACK: true}}, false); ok {
		t.Errorf("SYN-ACK of a known conversation: new %+v", c)
	}
	if c, ok := f.TakeNew(); ok {
		t.Errorf("TakeNew twice: %+v", c)
	}
	c, _ = acc(pkt{src: local, dst: web, sport: 40002, dport: 80, tcp: &layers.TCP{SYN: true}}, true)
	f.SetProcess(c, wget)
	c, ok = acc(pkt{src: web6, dst: local6, sport: 50000, dport: 8080, tcp: &layers.TCP{SYN: true}}, false)
	if !ok || c.Outbound || c.Local != netip.AddrPortFrom(local6, 8080) {
		t.Fatalf("inbound SYN: %+v, %v", c, ok)
	}
	f.SetProcess(c, nc)
	acc(pkt{src: local, dst: dnsSrv, sport: 5353, dport: 53, udp: true, payload: []byte{1}}, true) // unknown
	acc(pkt{src: local, dst: web, icmp: true}, true)                                               // no socket
	known := frame(t, pkt{src: local, dst: web, sport: 40001, dport: 80, tcp: &layers.TCP{ACK: true}})
	if a := testing.AllocsPerRun(100, func() {
		f.Account(known, len(known), 2, true)
		f.TakeNew()
	}); a != 0 {
		t.Errorf("Account and TakeNew of a known conversation: %v allocations", a)
	}

	r := NewReport(Meta{Processes: true}, f, NewNames())
	if r.Unattributed == nil || *r.Unattributed != 1 {
		t.Errorf("unattributed = %v, want 1 (the UDP one)", r.Unattributed)
	}
	for _, w := range []struct {
		port uint16
		p    Process
	}{{40001, curl}, {40002, wget}, {8080, nc}, {5353, Process{}}} {
		var got *Connection
		for i := range r.Connections {
			if r.Connections[i].LocalPort == w.port {
				got = &r.Connections[i]
			}
		}
		if got == nil || (Process{got.Pid, got.Comm, got.Cmdline}) != w.p {
			t.Errorf("port %d: %+v, want %+v", w.port, got, w.p)
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"pid":12,"comm":"curl","cmdline":"curl -s http://web/"}`, `"unattributed_connections": 1`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, js.String())
		}
	}
	if n := strings.Count(js.String(), `"pid"`); n != 3 {
		t.Errorf("%d connections with a pid in the JSON, want 3", n)
	}
	var text strings.Builder
	r.WriteText(&text, "")
	for _, re := range []string{
		`(?m)^  tcp +80  198\.51\.100\.80 +2 conns .*  curl\[12\], wget\[13\]$`,
		`(?m)^  tcp +8080  fd77:80::80 +1 conn .*  nc\[14\]$`,
		`(?m)^  udp +53  10\.213\.0\.0 .*no answer\)$`,
		`\(1 of the TCP and UDP connections above with no known process`,
	} {
		if !regexp.MustCompile(re).MatchString(text.String()) {
			t.Errorf("text lacks %s:\n%s", re, text.String())
		}
	}

	r = NewReport(Meta{}, f, NewNames())
	js.Reset()
	r.WriteJSON(&js)
	if r.Unattributed != nil || strings.Contains(js.String(), "unattributed") {
		t.Errorf("processes not looked for, yet unattributed = %v", r.Unattributed)
	}
}
