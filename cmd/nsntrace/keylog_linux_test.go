package main

import (
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/pcapng"
)

// secretsRecorder is a pcapng.Writer that keeps the key lines written.
type secretsRecorder struct {
	pcapng.Writer
	lines []string
}

func (s *secretsRecorder) WriteSecrets(_ pcapng.SecretsType, b []byte) error {
	s.lines = append(s.lines, strings.Fields(string(b))...)
	return nil
}

// tcpFrame is an untagged Ethernet frame with IPv4 and TCP between the
// program (10.213.0.1:40000) and a server (198.51.100.80:443).
func tcpFrame(outbound bool, payload []byte) []byte {
	b := make([]byte, 54, 54+len(payload))
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	b[14], b[23] = 0x45, 6
	binary.BigEndian.PutUint16(b[16:], uint16(40+len(payload)))
	prog, srv := []byte{10, 213, 0, 1}, []byte{198, 51, 100, 80}
	ps, ss := uint16(40000), uint16(443)
	if !outbound {
		prog, srv, ps, ss = srv, prog, ss, ps
	}
	copy(b[26:], prog)
	copy(b[30:], srv)
	binary.BigEndian.PutUint16(b[34:], ps)
	binary.BigEndian.PutUint16(b[36:], ss)
	b[46], b[47] = 5<<4, 0x18
	return append(b, payload...)
}

// keyFIFO makes a FIFO and opens it as child.Process.KeyLog does.
func keyFIFO(t *testing.T) (string, *keyLog) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	k, err := newKeyLog(f)
	if err != nil {
		t.Fatal(err)
	}
	return path, k
}

// The server's first flight waits for the lines the program logs after
// reading it, however late the program is (here 300 ms, far more than a
// fixed lag allowed), and only that packet waits. The lines come as
// OpenSSL writes them, one at a time with the program's work between
// them; the wait ends when all that Wireshark needs before the flight
// has come, not at the first line.
func TestKeyLogWaitsForTheConnectionsKeys(t *testing.T) {
	path, k := keyFIFO(t)
	random := strings.Repeat("ab", 32)
	hello := append([]byte{22, 3, 1, 0x02, 0x00, 1, 0x00, 0x01, 0xfc, 3, 3}, make([]byte, 40)...)
	hex.Decode(hello[11:43], []byte(random))
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rec := &secretsRecorder{}
	now := time.Now().UnixNano()
	if err := k.before(tcpFrame(true, hello), now, pcapng.DirectionOutbound, rec); err != nil {
		t.Fatal(err)
	}
	order := []string{"SERVER_HANDSHAKE_TRAFFIC_SECRET", "EXPORTER_SECRET", "SERVER_TRAFFIC_SECRET_0", "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"}
	go func() {
		time.Sleep(300 * time.Millisecond)
		for _, label := range order {
			w.WriteString(label + " " + random + " 0011\n")
			time.Sleep(50 * time.Millisecond)
		}
	}()
	if err := k.before(tcpFrame(false, []byte{22, 3, 3, 0, 90, 2}), time.Now().UnixNano(), pcapng.DirectionInbound, rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.lines) != 3*4 || rec.lines[1] != random || rec.lines[9] != "CLIENT_HANDSHAKE_TRAFFIC_SECRET" {
		t.Fatalf("before the server's flight: %q, want the four lines up to the client's handshake secret", rec.lines)
	}
	// Later packets of the connection do not wait.
	start := time.Now()
	if err := k.before(tcpFrame(false, []byte{23, 3, 3, 0, 1, 0}), time.Now().UnixNano(), pcapng.DirectionInbound, rec); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > keyLogWait/2 {
		t.Errorf("a later packet waited %v", d)
	}
}

// A program that never opens the key log (Go's TLS) costs one wait, and a
// closed key log none.
func TestKeyLogWithoutKeys(t *testing.T) {
	path, k := keyFIFO(t)
	rec := &secretsRecorder{}
	hello := append([]byte{22, 3, 1, 0x02, 0x00, 1, 0x00, 0x01, 0xfc, 3, 3}, make([]byte, 40)...)
	past := time.Now().Add(-keyLogWait + 50*time.Millisecond).UnixNano()
	k.before(tcpFrame(true, hello), past, pcapng.DirectionOutbound, rec)
	if err := k.before(tcpFrame(false, []byte{22, 3, 3}), past, pcapng.DirectionInbound, rec); err != nil {
		t.Fatal(err)
	}
	if !k.gaveUp {
		t.Fatal("no line and no writer: the wait did not end at its deadline")
	}
	hello[20] = 1 // another connection's random
	k.before(tcpFrame(true, hello), time.Now().UnixNano(), pcapng.DirectionOutbound, rec)
	start := time.Now()
	k.before(tcpFrame(false, []byte{22, 3, 3}), time.Now().UnixNano(), pcapng.DirectionInbound, rec)
	if d := time.Since(start); d > keyLogWait/2 {
		t.Errorf("after giving up, a packet waited %v", d)
	}

	// A writer came and went without the line: no wait either.
	k.gaveUp = false
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("CLIENT_RANDOM " + strings.Repeat("cd", 32) + " 00\n")
	w.Close()
	hello[20] = 2
	k.before(tcpFrame(true, hello), time.Now().UnixNano(), pcapng.DirectionOutbound, rec)
	start = time.Now()
	k.before(tcpFrame(false, []byte{22, 3, 3}), time.Now().UnixNano(), pcapng.DirectionInbound, rec)
	if d := time.Since(start); d > keyLogWait/2 {
		t.Errorf("with no writer left, a packet waited %v", d)
	}
	if len(rec.lines) != 3 {
		t.Errorf("lines %q, want the one written", rec.lines)
	}
}

// A TLS 1.3 handshake that fails after the server's flight (its
// certificate refused) logs only the server's handshake secret: the wait
// ends at its deadline, and the next connection's first line does not
// make a packet wait again; a connection whose lines are complete does.
func TestKeyLogFailedHandshake(t *testing.T) {
	path, k := keyFIFO(t)
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rec := &secretsRecorder{}
	hello := append([]byte{22, 3, 1, 0x02, 0x00, 1, 0x00, 0x01, 0xfc, 3, 3}, make([]byte, 40)...)
	conn := func(n byte, lines ...string) time.Duration {
		t.Helper()
		hello[20] = n
		random := hex.EncodeToString(hello[11:43])
		// Its deadline 1 s from now: a wait and no wait stay apart on a
		// loaded machine.
		past := time.Now().Add(-keyLogWait + time.Second).UnixNano()
		if err := k.before(tcpFrame(true, hello), past, pcapng.DirectionOutbound, rec); err != nil {
			t.Fatal(err)
		}
		for _, label := range lines {
			w.WriteString(label + " " + random + " 00\n")
		}
		if err := k.drain(rec); err != nil { // as the packets between do
			t.Fatal(err)
		}
		start := time.Now()
		if err := k.before(tcpFrame(false, []byte{22, 3, 3}), past, pcapng.DirectionInbound, rec); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	if d := conn(1, "SERVER_HANDSHAKE_TRAFFIC_SECRET"); !k.gaveUp || d < 500*time.Millisecond {
		t.Fatalf("after the server's handshake secret alone the wait ended in %v (gave up: %v), want its deadline", d, k.gaveUp)
	}
	if d := conn(2, "SERVER_HANDSHAKE_TRAFFIC_SECRET"); d > 500*time.Millisecond {
		t.Errorf("a second failed handshake waited %v", d)
	}
	conn(3, "SERVER_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0", "CLIENT_HANDSHAKE_TRAFFIC_SECRET")
	if k.gaveUp {
		t.Error("a connection's complete lines did not end the giving up")
	}
}
