//go:build linux

package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/rundir"
	"github.com/nsntrace/nsntrace/internal/summary"
	"github.com/nsntrace/nsntrace/pcapng"
)

// keyLogPath is where the program's TLS library writes its keys
// (SSLKEYLOGFILE) with --tls-keys: a FIFO on a private tmpfs over
// rundir.Dir, in the program's mount namespace only (child.Config.KeyLog).
var keyLogPath = rundir.Path("tls-keys")

// keyLogWait bounds how long the first packet a server sends on a TLS
// connection the program opened waits for the program to log that
// connection's keys. The program derives them from that very packet, so
// the packet is in the ring before the line is in the FIFO; how long the
// program takes depends on the load of the machine, not on the network.
const keyLogWait = 2 * time.Second

// maxKeyLogConns bounds the connections and client randoms remembered.
const maxKeyLogConns = 1 << 14

// keyLog moves the program's key log lines into the capture file as
// Decryption Secrets Blocks, each before the packets it decrypts, so that
// Wireshark decrypts on its first pass. It belongs to the capture
// goroutine.
//
// Lines name their connection by the client random of its ClientHello
// (NSS key log format). Keys the program uses to send were logged before
// it sent: reading the FIFO after a packet was captured finds them. Keys
// for what the server sends the program can only derive from the server's
// first flight: that packet waits until the lines Wireshark needs before
// it (keySet.ready) have come for its connection's client random, no
// writer has the FIFO open, or keyLogWait has passed (after which no
// packet waits again until some connection's lines are complete: a
// program that does not log keys, or whose handshakes fail, costs one
// wait, not one per connection).
type keyLog struct {
	f       *os.File
	rc      syscall.RawConn
	partial []byte // a line not yet complete
	buf     []byte
	drained int64 // when the FIFO was last read to its end (Unix ns)

	pending map[summary.Conv][32]byte // connections whose hello the program sent and whose keys are not logged
	logged  map[[32]byte]keySet       // the lines seen, by client random
	gaveUp  bool                      // a wait timed out and no connection's lines were complete since
}

// keySet says which lines of the NSS key log format a connection has.
type keySet uint8

const (
	keyClientRandom    keySet = 1 << iota // TLS 1.2 and older: the master secret, all there is
	keyServerHandshake                    // TLS 1.3 from here on
	keyClientHandshake
	keyServerTraffic
)

// flightKeys are the TLS 1.3 lines that must precede the server's first
// flight in the file: Wireshark installs both handshake keys at the
// ServerHello and the server's application key at its Finished, which is
// in that flight, often in the very packet, with 0.5-RTT data after it;
// a key it lacks then stays lacking for the whole connection. OpenSSL
// logs them one write at a time while it reads the flight, the server's
// handshake secret first: the first line of a connection is not enough.
const flightKeys = keyServerHandshake | keyClientHandshake | keyServerTraffic

// ready says whether a connection's lines are all that its server's first
// flight needs.
func (s keySet) ready() bool {
	return s&keyClientRandom != 0 || s&flightKeys == flightKeys
}

// keyLabels maps the labels that decide readiness to their bits; other
// labels (EXPORTER_SECRET, CLIENT_TRAFFIC_SECRET_0, early data) go into
// the file but decide nothing.
var keyLabels = map[string]keySet{
	"CLIENT_RANDOM":                   keyClientRandom,
	"SERVER_HANDSHAKE_TRAFFIC_SECRET": keyServerHandshake,
	"CLIENT_HANDSHAKE_TRAFFIC_SECRET": keyClientHandshake,
	"SERVER_TRAFFIC_SECRET_0":         keyServerTraffic,
}

// maxKeyLogLine bounds a line kept while its end is awaited; key log
// lines are a label and two hex strings, a few hundred bytes.
const maxKeyLogLine = 64 << 10

func newKeyLog(f *os.File) (*keyLog, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("read the TLS key log: %w", err)
	}
	return &keyLog{f: f, rc: rc, buf: make([]byte, 64<<10),
		pending: map[summary.Conv][32]byte{}, logged: map[[32]byte]keySet{}}, nil
}

// before writes to w the key lines that may decrypt data, a frame
// captured at ts (Unix ns) that the program sent or received (dir; on its
// lo, where it does both, unknown), waiting for them when data is the
// server's first flight.
func (k *keyLog) before(data []byte, ts int64, dir pcapng.Direction, w pcapng.Writer) error {
	if k.drained < ts {
		if err := k.drain(w); err != nil {
			return err
		}
	}
	if dir == pcapng.DirectionUnknown {
		return nil
	}
	outbound := dir == pcapng.DirectionOutbound
	conv, payload, ok := summary.TCPPayload(data, outbound)
	if !ok || len(payload) == 0 {
		return nil
	}
	if outbound {
		if cr := summary.ClientRandom(payload); cr != nil {
			r := [32]byte(cr)
			if !k.logged[r].ready() {
				if len(k.pending) >= maxKeyLogConns {
					clear(k.pending)
				}
				k.pending[conv] = r
			}
		}
		return nil
	}
	r, ok := k.pending[conv]
	if !ok {
		return nil
	}
	delete(k.pending, conv)
	return k.await(r, time.Unix(0, ts).Add(keyLogWait), w)
}

// await reads the FIFO until the lines for client random r are ready.
func (k *keyLog) await(r [32]byte, deadline time.Time, w pcapng.Writer) error {
	for {
		if k.logged[r].ready() || k.gaveUp {
			return nil
		}
		d := time.Until(deadline)
		readable, hup, err := k.poll(d) // d <= 0: a look, no wait
		if err != nil {
			return err
		}
		switch {
		case readable:
			if err := k.drain(w); err != nil {
				return err
			}
		case hup:
			return nil // no writer: nothing is on its way
		case d <= 0:
			k.gaveUp = true
			return nil
		}
	}
}

// poll waits at most d for the FIFO to be readable, or to have no writer.
func (k *keyLog) poll(d time.Duration) (readable, hup bool, err error) {
	var perr error
	cerr := k.rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		ms := 0
		if d > 0 {
			ms = int(d.Milliseconds()) + 1
		}
		for {
			_, perr = unix.Poll(fds, ms)
			if perr != unix.EINTR {
				break
			}
		}
		readable, hup = fds[0].Revents&unix.POLLIN != 0, fds[0].Revents&unix.POLLHUP != 0
	})
	if cerr == nil && perr != nil {
		cerr = os.NewSyscallError("poll", perr)
	}
	if cerr != nil {
		return false, false, fmt.Errorf("wait for the TLS key log: %w", cerr)
	}
	return readable, hup, nil
}

// drain reads what the FIFO holds, without waiting, and writes its
// complete lines as one block.
func (k *keyLog) drain(w pcapng.Writer) error {
	k.drained = time.Now().UnixNano()
	for {
		var n int
		var rerr error
		if err := k.rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), k.buf)
			return true // never wait for the program
		}); err != nil {
			return fmt.Errorf("read the TLS key log: %w", err)
		}
		if rerr == unix.EAGAIN || n <= 0 {
			break // empty, or no writer and empty
		}
		if rerr != nil {
			return fmt.Errorf("read the TLS key log: %w", os.NewSyscallError("read", rerr))
		}
		if len(k.partial) > maxKeyLogLine {
			k.partial = k.partial[:0] // not a key log: no line is this long
		}
		k.partial = append(k.partial, k.buf[:n]...)
	}
	end := bytes.LastIndexByte(k.partial, '\n')
	if end < 0 {
		return nil
	}
	k.learn(k.partial[:end+1])
	err := w.WriteSecrets(pcapng.SecretsTLSKeyLog, k.partial[:end+1])
	k.partial = append(k.partial[:0], k.partial[end+1:]...)
	return err
}

// learn remembers which lines (LABEL RANDOM SECRET) each client random has.
func (k *keyLog) learn(lines []byte) {
	for len(lines) > 0 {
		line := lines
		if i := bytes.IndexByte(lines, '\n'); i >= 0 {
			line, lines = lines[:i], lines[i+1:]
		} else {
			lines = nil
		}
		f := bytes.Fields(line)
		var r [32]byte
		if len(f) < 3 || len(f[1]) != 64 {
			continue
		}
		if _, err := hex.Decode(r[:], f[1]); err != nil {
			continue
		}
		if len(k.logged) >= maxKeyLogConns {
			clear(k.logged)
		}
		was := k.logged[r]
		k.logged[r] = was | keyLabels[string(f[0])]
		if !was.ready() && k.logged[r].ready() {
			k.gaveUp = false
		}
	}
}
