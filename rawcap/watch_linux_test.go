package rawcap

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/bpf"

	"github.com/nsntrace/nsntrace/internal/testbed"
	"github.com/nsntrace/nsntrace/rawcap/filter"
)

// TestWatcher: a watcher on lo hands over each packet its filter keeps,
// cut to the snap length, and nothing else (a TCP
// handshake on the same lo); cancelling its context ends Run with nil.
func TestWatcher(t *testing.T) {
	ns, f, lo := loNamespace(t)
	defer f.Close()
	const snap = 64
	prog, err := filter.Compile("udp", snap)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher(&Config{NetNS: int(f.Fd()), SnapLen: snap, Filter: prog})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Bind(lo); err != nil {
		t.Fatal(err)
	}
	pkts := make(chan Packet, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func(p *Packet) error {
			select {
			case pkts <- p.Clone():
			default:
			}
			return nil
		})
	}()
	payload := make([]byte, 200)
	err = ns.Do(func() error {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		c, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			return err
		}
		c.Close()
		u, err := net.Dial("udp4", "127.0.0.1:9")
		if err != nil {
			return err
		}
		defer u.Close()
		_, err = u.Write(payload)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// lo hands every packet over twice: sent, and received.
	for i := 0; i < 2; i++ {
		select {
		case p := <-pkts:
			if len(p.Data) != snap || p.Length != snap || p.Data[23] != 17 || p.IfIndex != lo ||
				p.Type != PacketOutgoing && p.Type != PacketHost {
				t.Errorf("packet %d: %d of %d bytes, protocol %d, interface %d, type %d", i, len(p.Data), p.Length, p.Data[23], p.IfIndex, p.Type)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("packet %d never came", i)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	select {
	case p := <-pkts:
		t.Errorf("a packet the filter rejects, or a third copy: % x", p.Data)
	default:
	}
	if err := w.Close(); err != nil || w.Close() != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestWatcherSetFilter: a filter set while Run waits takes effect at
// once: UDP to port 9 arrives under "udp", not under "udp port 53", and
// again under "udp".
func TestWatcherSetFilter(t *testing.T) {
	ns, f, lo := loNamespace(t)
	defer f.Close()
	compile := func(expr string) []bpf.RawInstruction {
		prog, err := filter.Compile(expr, 64)
		if err != nil {
			t.Fatal(err)
		}
		return prog
	}
	w, err := NewWatcher(&Config{NetNS: int(f.Fd()), SnapLen: 64, Filter: compile("udp")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Bind(lo); err != nil {
		t.Fatal(err)
	}
	pkts := make(chan byte, 64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx, func(p *Packet) error {
		if len(p.Data) > 42 {
			pkts <- p.Data[42] // the payload's first byte
		}
		return nil
	})
	send := func(mark byte) {
		t.Helper()
		err := ns.Do(func() error {
			u, err := net.Dial("udp4", "127.0.0.1:9")
			if err != nil {
				return err
			}
			defer u.Close()
			_, err = u.Write([]byte{mark})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	expect := func(mark byte, want bool) {
		t.Helper()
		got := 0
		timeout := time.After(300 * time.Millisecond)
		for done := false; !done; {
			select {
			case m := <-pkts:
				if m == mark {
					got++
				}
			case <-timeout:
				done = true
			}
		}
		if (got > 0) != want {
			t.Errorf("datagram %c: seen %d times, want seen: %v", mark, got, want)
		}
	}
	send('a')
	expect('a', true)
	if err := w.SetFilter(compile("udp port 53")); err != nil {
		t.Fatal(err)
	}
	send('b')
	expect('b', false)
	if err := w.SetFilter(compile("udp")); err != nil {
		t.Fatal(err)
	}
	send('c')
	expect('c', true)
	if err := w.SetFilter(nil); err == nil {
		t.Error("SetFilter(nil) succeeded")
	}
}

// loNamespace is a network namespace of the test's own, an open fd of it
// (the caller closes it) and the index of its lo.
func loNamespace(t *testing.T) (*testbed.NS, *os.File, int) {
	t.Helper()
	testbed.RequirePrivileged(t)
	ns := testbed.NewNS(t)
	f, err := ns.Open()
	if err != nil {
		t.Fatal(err)
	}
	var lo int
	if err := ns.Do(func() error { var err error; lo, err = netInterfaceIndex("lo"); return err }); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return ns, f, lo
}
