//go:build linux

package rawcap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/socket"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/kfeature"
)

// Watcher is a packet socket without a ring: every packet its filter
// accepts wakes the reader at once, where a Ring hands packets over a
// block at a time, up to its block timeout later (and the kernel's retire
// timer ticks in jiffies: 4 ms at HZ=250, whatever the timeout asked).
// It is for a trickle of packets that must be looked at while they are
// fresh; each costs a system call and a copy, so it is no capture path.
type Watcher struct {
	conn      *socket.Conn
	buf       []byte
	closeOnce sync.Once
	closeErr  error
}

// NewWatcher opens a watcher with cfg's Filter, SnapLen and NetNS (the
// ring's fields are ignored), bound to no interface yet, so that nothing
// reaches it before the filter is in place.
func NewWatcher(cfg *Config) (w *Watcher, err error) {
	c := cfg.withDefaults()
	if c.SnapLen < 0 {
		return nil, fmt.Errorf("open watcher: negative snap length %d", c.SnapLen)
	}
	if len(c.Filter) > 0xffff {
		return nil, fmt.Errorf("open watcher: filter of %d instructions is too long", len(c.Filter))
	}
	conn, err := socket.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0, "packet", &socket.Config{NetNS: max(c.NetNS, 0)})
	if err != nil {
		return nil, fmt.Errorf("open watcher: %w", kfeature.PacketSocket(err))
	}
	defer func() {
		if err != nil {
			conn.Close()
		}
	}()
	w = &Watcher{conn: conn, buf: make([]byte, c.SnapLen)}
	if len(c.Filter) > 0 {
		if err := w.SetFilter(c.Filter); err != nil {
			return nil, fmt.Errorf("open watcher: %w", err)
		}
	}
	return w, nil
}

// SetFilter replaces the watcher's filter with prog (which must not be
// empty), at once and while Run waits: the kernel swaps the socket's
// filter atomically (sk_attach_filter), so every packet meets one filter or
// the other.
func (w *Watcher) SetFilter(prog []bpf.RawInstruction) error {
	if len(prog) == 0 || len(prog) > 0xffff {
		return fmt.Errorf("set watch filter: %d instructions", len(prog))
	}
	sf := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		sf[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	rc, err := w.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("set watch filter: %w", err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = attachFilter(int(fd), sf) }); err != nil {
		return fmt.Errorf("set watch filter: %w", err)
	}
	if ferr != nil {
		return os.NewSyscallError("setsockopt SO_ATTACH_FILTER", ferr)
	}
	return nil
}

// Bind starts watching the interface with index ifindex (wraps bind(2)
// with ETH_P_ALL).
func (w *Watcher) Bind(ifindex int) error {
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := w.conn.Bind(sa); err != nil {
		return fmt.Errorf("bind watcher: %w", err)
	}
	return nil
}

// Run hands each packet to fn as it arrives, until ctx is done (then it
// returns nil) or fn fails. Packet.Data is valid only during fn; Length is
// what the filter kept of the packet (the kernel trims the packet itself
// before a socket without a ring sees it), Timestamp when Run read it; a
// VLAN tag the kernel stripped is not put back. Run must not be called concurrently
// with itself.
func (w *Watcher) Run(ctx context.Context, fn func(*Packet) error) error {
	var p Packet
	for {
		n, sa, err := w.conn.Recvfrom(ctx, w.buf, 0)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ENETDOWN):
			continue
		case err != nil:
			return fmt.Errorf("watch: %w", err)
		}
		ll, _ := sa.(*unix.SockaddrLinklayer)
		if ll == nil {
			continue
		}
		p = Packet{Data: w.buf[:n], Length: n, Timestamp: time.Now().UnixNano(),
			IfIndex: ll.Ifindex, Type: PacketType(ll.Pkttype)}
		if err := fn(&p); err != nil {
			return err
		}
	}
}

// Close closes the socket, which ends a Run. It is idempotent.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() { w.closeErr = w.conn.Close() })
	return w.closeErr
}
