//go:build linux

package main

import (
	"context"
	"fmt"

	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
)

// loopRing is the capture's ring on the program's lo: what it captures
// goes to interface iface of the file.
type loopRing struct {
	ring  *rawcap.Ring
	iface int
	// base is the ring's counters when the current file began; the
	// capture goroutines'.
	base rawcap.Stats
	// hold is this ring's goroutine's hold on capture.mu.
	hold holder
}

// addLoopback makes the capture take lo's packets from ring too, into
// the file's interface iface.
func (c *capture) addLoopback(ring *rawcap.Ring, iface int) {
	c.lo = &loopRing{ring: ring, iface: iface, hold: holder{mu: &c.mu}}
}

// runLoopback captures from lo's ring until ctx is done and the ring is
// drained.
func (c *capture) runLoopback(ctx context.Context) error {
	l := c.lo
	err := l.ring.RunBlocks(ctx, func(p *rawcap.Packet) error {
		l.hold.hold()
		// Every packet on lo is one the program both sent and received
		// (the ring keeps the received copy only: rawcap.DropOutgoing),
		// so it gets no direction.
		return c.write(p, l.iface, pcapng.DirectionUnknown, pcapng.ReceptionUnknown, true)
	}, func() error {
		l.hold.hold()
		defer l.hold.let()
		return c.w.Release()
	})
	l.hold.let()
	return err
}

// loopbackInterface is how the file describes the program's lo.
func (t *tracer) loopbackInterface() pcapng.Interface {
	return pcapng.Interface{
		SnapLen:     uint32(t.o.snapLen),
		Name:        "lo",
		Description: fmt.Sprintf("loopback of %s, in its network namespace: each packet once, with no direction (the program sent and received it)", quoteShort(t.argv)),
		Filter:      t.o.filter,
	}
}

// openLoopback starts allocating the ring for the program's lo, in its
// network namespace (netns, an fd that must stay open until the ring
// arrives), and returns where it arrives; the session collects it
// (bindLoopback) or closes it.
func (s *session) openLoopback(t *tracer, netns int) chan newRing {
	c := *t.ringConfig()
	c.NetNS = netns
	c.DropOutgoing = true
	loc := make(chan newRing, 1)
	go func() {
		r, err := rawcap.New(&c)
		loc <- newRing{r, err}
	}()
	s.do(func() { // collects the ring if bindLoopback did not
		if nr, ok := <-loc; ok && nr.r != nil {
			nr.r.Close()
		}
	})
	return loc
}

// bindLoopback takes the ring from openLoopback and binds it to lo.
func (s *session) bindLoopback(loc chan newRing) error {
	nr := <-loc
	close(loc)
	if nr.err != nil {
		return fmt.Errorf("open capture on the program's lo: %w", nr.err)
	}
	s.lo = nr.r
	s.doAside(func() { s.lo.Close() }) // after Stats; a close error loses nothing
	if err := s.lo.Bind(s.link.LoopbackIndex()); err != nil {
		return fmt.Errorf("open capture on the program's lo: %w", err)
	}
	return nil
}
