//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/rundir"
	"github.com/nsntrace/nsntrace/pcapng"
)

// keyLogPath is where the program's TLS library writes its keys
// (SSLKEYLOGFILE) with --tls-keys: a FIFO on a private tmpfs over
// /run/nsntrace, in the program's mount namespace only (child.Config.KeyLog).
var keyLogPath = rundir.Path("tls-keys")

// keyLogLag is how long after a packet a TLS library may take to write
// the key line that decrypts it: the program derives a key from a packet
// it received (the server's handshake) and logs it at once, but the
// packet is in the ring before the line is in the FIFO. A packet's keys
// are looked for until then.
const keyLogLag = 10 * time.Millisecond

// keyLog moves the program's key log lines into the capture file as
// Decryption Secrets Blocks, each before the packets it decrypts, so that
// Wireshark decrypts on its first pass. It belongs to the capture
// goroutine.
type keyLog struct {
	f       *os.File
	partial []byte // a line not yet complete
	buf     []byte
	drained int64 // when the FIFO was last read to its end (Unix ns)
}

// maxKeyLogLine bounds a line kept while its end is awaited; key log
// lines are a label and two hex strings, a few hundred bytes.
const maxKeyLogLine = 64 << 10

func newKeyLog(f *os.File) *keyLog { return &keyLog{f: f, buf: make([]byte, 64<<10)} }

// before writes to w the key lines that may decrypt a packet captured at
// ts (Unix ns): those written up to keyLogLag after it, waiting for that
// moment if it is still to come.
func (k *keyLog) before(ts int64, w pcapng.Writer) error {
	if ts+int64(keyLogLag) <= k.drained {
		return nil
	}
	if d := time.Until(time.Unix(0, ts+int64(keyLogLag))); d > 0 {
		time.Sleep(d)
	}
	k.drained = time.Now().UnixNano()
	return k.drain(w)
}

// drain reads what the FIFO holds, without waiting, and writes its
// complete lines as one block.
func (k *keyLog) drain(w pcapng.Writer) error {
	rc, err := k.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("read the TLS key log: %w", err)
	}
	for {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), k.buf)
			return true // never wait for the program
		}); err != nil {
			return fmt.Errorf("read the TLS key log: %w", err)
		}
		if rerr == unix.EAGAIN || n <= 0 {
			break
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
	err = w.WriteSecrets(pcapng.SecretsTLSKeyLog, k.partial[:end+1])
	k.partial = append(k.partial[:0], k.partial[end+1:]...)
	return err
}
