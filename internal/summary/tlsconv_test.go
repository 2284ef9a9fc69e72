package summary

import (
	"bytes"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// A ClientHello's random, as curl sent it (record and handshake headers,
// version, random); anything else has none.
func TestClientRandom(t *testing.T) {
	random := bytes.Repeat([]byte{0xab}, 32)
	hello := append([]byte{22, 3, 1, 0x02, 0x00, 1, 0x00, 0x01, 0xfc, 3, 3}, random...)
	hello = append(hello, 0x20) // session id length, and more
	if got := ClientRandom(hello); !bytes.Equal(got, random) {
		t.Errorf("ClientRandom = %x, want %x", got, random)
	}
	for name, p := range map[string][]byte{
		"cut short":    hello[:40],
		"server hello": append([]byte{22, 3, 3, 0, 90, 2, 0, 0, 86, 3, 3}, random...),
		"app data":     append([]byte{23, 3, 3, 0, 90, 1, 0, 0, 86, 3, 3}, random...),
		"empty":        nil,
	} {
		if got := ClientRandom(p); got != nil {
			t.Errorf("%s: ClientRandom = %x, want nil", name, got)
		}
	}
}

func FuzzClientRandom(f *testing.F) {
	f.Add(append([]byte{22, 3, 1, 0x02, 0x00, 1, 0x00, 0x01, 0xfc, 3, 3}, make([]byte, 33)...))
	f.Fuzz(func(t *testing.T, p []byte) {
		if r := ClientRandom(p); r != nil && (len(r) != 32 || !bytes.Contains(p, r)) {
			t.Fatalf("random %x not 32 bytes of the payload", r)
		}
	})
}

// TCPPayload finds a frame's TCP payload and names its conversation the
// same way from both directions.
func TestTCPPayload(t *testing.T) {
	out := frame(t, pkt{src: local, dst: web, sport: 40000, dport: 443, tcp: &layers.TCP{ACK: true, PSH: true}, payload: []byte("hello")})
	in := frame(t, pkt{src: web, dst: local, sport: 443, dport: 40000, tcp: &layers.TCP{ACK: true, PSH: true}, payload: []byte("world!")})
	other := frame(t, pkt{src: web, dst: local, sport: 443, dport: 40001, tcp: &layers.TCP{ACK: true}, payload: []byte("x")})
	udp := frame(t, pkt{src: local, dst: web, sport: 40000, dport: 443, udp: true, payload: []byte("quic")})
	co, po, ok1 := TCPPayload(out, true)
	ci, pi, ok2 := TCPPayload(in, false)
	if !ok1 || !ok2 || string(po) != "hello" || string(pi) != "world!" {
		t.Fatalf("payloads %q %v, %q %v", po, ok1, pi, ok2)
	}
	if co != ci {
		t.Errorf("the two directions are different conversations: %+v %+v", co, ci)
	}
	if c, _, _ := TCPPayload(other, false); c == co {
		t.Errorf("another port is the same conversation")
	}
	if _, _, ok := TCPPayload(udp, true); ok {
		t.Errorf("UDP read as TCP")
	}
}
