package summary

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// TestLoopback: conversations on lo are one entry per conversation
// whichever way their packets go, with the TCP client told by its SYN and
// a UDP client by its higher port; they are in the report's loopback
// list and its own text section, never among the connections.
func TestLoopback(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	lo6 := netip.MustParseAddr("::1")
	l := NewLoopback(nil)
	var ts int64
	send := func(p pkt) {
		b := frame(t, p)
		ts += 1000
		l.Account(b, len(b), ts)
	}
	// A TCP client on port 7000, below the server's 8080: the SYN says who
	// is the client, not the ports.
	send(pkt{src: lo, dst: lo, sport: 7000, dport: 8080, tcp: &layers.TCP{SYN: true}})
	send(pkt{src: lo, dst: lo, sport: 8080, dport: 7000, tcp: &layers.TCP{SYN: true, ACK: true}})
	send(pkt{src: lo, dst: lo, sport: 7000, dport: 8080, tcp: &layers.TCP{ACK: true}, payload: []byte("ping\n")})
	send(pkt{src: lo, dst: lo, sport: 8080, dport: 7000, tcp: &layers.TCP{ACK: true}, payload: []byte("ping\n")})
	// UDP to a resolver on 127.0.0.53 and its answer.
	send(pkt{src: lo, dst: netip.MustParseAddr("127.0.0.53"), sport: 40000, dport: 53, udp: true, payload: []byte("q")})
	send(pkt{src: netip.MustParseAddr("127.0.0.53"), dst: lo, sport: 53, dport: 40000, udp: true, payload: []byte("answer")})
	// A refused connection over IPv6.
	send(pkt{src: lo6, dst: lo6, sport: 50000, dport: 9, tcp: &layers.TCP{SYN: true}})
	send(pkt{src: lo6, dst: lo6, sport: 9, dport: 50000, tcp: &layers.TCP{RST: true, ACK: true}})

	r := NewReport(Meta{}, NewFlows(nil), NewNames())
	r.AddLoopback(l)
	if len(r.Connections) != 0 {
		t.Errorf("connections: %+v, want none", r.Connections)
	}
	want := []struct {
		proto, server string
		sport         uint16
		client        string
		cport         uint16
		toS, toC      uint64
		state         string
	}{
		{"tcp", "127.0.0.1", 8080, "127.0.0.1", 7000, 2, 2, "established"},
		{"udp", "127.0.0.53", 53, "127.0.0.1", 40000, 1, 1, "answered"},
		{"tcp", "::1", 9, "::1", 50000, 1, 1, "refused"},
	}
	if len(r.Loopback) != len(want) {
		t.Fatalf("loopback: %+v, want %d conversations", r.Loopback, len(want))
	}
	for i, w := range want {
		c := r.Loopback[i]
		if c.Proto != w.proto || c.ServerAddr != w.server || c.ServerPort != w.sport || c.ClientAddr != w.client ||
			c.ClientPort != w.cport || c.PacketsToServer != w.toS || c.PacketsToClient != w.toC || c.State != w.state {
			t.Errorf("loopback[%d] = %+v, want %+v", i, c, w)
		}
	}
	if c := r.Loopback[0]; c.BytesToServer != c.BytesToClient {
		t.Errorf("tcp bytes: %d to server, %d back; the same frames each way", c.BytesToServer, c.BytesToClient)
	}

	var text strings.Builder
	if err := r.WriteText(&text, ""); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	for _, s := range []string{"Loopback conversations", "tcp     8080  127.0.0.1", "udp       53  127.0.0.53", "(1 refused)"} {
		if !strings.Contains(out, s) {
			t.Errorf("text lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "Outbound") || strings.Contains(out, "No connections") {
		t.Errorf("text lists loopback as connections:\n%s", out)
	}

	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Connections []json.RawMessage `json:"connections"`
		Loopback    []map[string]any  `json:"loopback"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if len(doc.Connections) != 0 || len(doc.Loopback) != 3 || doc.Loopback[0]["server_port"] != 8080.0 || doc.Loopback[0]["client_port"] != 7000.0 {
		t.Errorf("JSON: %s", b.String())
	}

	// Not captured: null, so that a reader tells it from "none".
	b.Reset()
	if err := NewReport(Meta{}, NewFlows(nil), NewNames()).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"loopback": null`) {
		t.Errorf("JSON without loopback: %s", b.String())
	}
}

func TestLoopbackAccountAllocs(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	l := NewLoopback(nil)
	a := frame(t, pkt{src: lo, dst: lo, sport: 7000, dport: 8080, tcp: &layers.TCP{ACK: true}, payload: []byte("x")})
	b := frame(t, pkt{src: lo, dst: lo, sport: 8080, dport: 7000, tcp: &layers.TCP{ACK: true}, payload: []byte("y")})
	if n := testing.AllocsPerRun(100, func() { l.Account(a, len(a), 1); l.Account(b, len(b), 2) }); n != 0 {
		t.Errorf("Account allocates %v times", n)
	}
}
