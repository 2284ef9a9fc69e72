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

// The server's first flight waits for the line the program logs after
// reading it, however late the program is (here 300 ms, far more than a
// fixed lag allowed), and only that packet waits.
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
	go func() {
		time.Sleep(300 * time.Millisecond)
		w.WriteString("CLIENT_HANDSHAKE_TRAFFIC_SECRET " + random + " 0011\nSERVER_HANDSHAKE_TRAFFIC_SECRET " + random + " 2233\n")
	}()
	if err := k.before(tcpFrame(false, []byte{22, 3, 3, 0, 90, 2}), time.Now().UnixNano(), pcapng.DirectionInbound, rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.lines) != 6 || rec.lines[1] != random {
		t.Fatalf("before the server's flight: %q, want both handshake lines", rec.lines)
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
