//go:build linux

package main

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/bpf"

	"github.com/nsntrace/nsntrace/internal/summary"
	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
	"github.com/nsntrace/nsntrace/rawcap/filter"
)

// prepareCapture checks, before anything is created, what both modes
// capture with: the filter, compiled, and the capture file.
func prepareCapture(o *options) ([]bpf.RawInstruction, *captureFile, error) {
	prog, err := filter.Compile(o.filter, uint32(o.snapLen))
	if err != nil {
		return nil, nil, failf(exitFailure, "%s", filterError(err))
	}
	format, _ := outputFormat(o.output, o.format) // checked by parse
	owner, err := resolveOwner(o, os.Geteuid(), os.Getenv)
	if err != nil {
		return nil, nil, failf(exitFailure, "%v", err)
	}
	f := newCaptureFile(o.output, format, o.rot, owner)
	if err := f.check(); err != nil {
		return nil, nil, failf(exitFailure, "%v", err)
	}
	return prog, f, nil
}

// ringConfig is the ring for o with the filter prog; live when packets
// must reach the reader at once.
func ringConfig(o *options, prog []bpf.RawInstruction, live bool) *rawcap.Config {
	c := &rawcap.Config{SnapLen: o.snapLen, Filter: prog, RingSize: o.bufferKiB << 10}
	if live {
		c.BlockTimeout = liveBlockTimeout
	}
	return c
}

// capture moves packets from a ring, and from the program's loopback
// ring if there is one, into a capture file.
//
// Each ring has a goroutine of its own, which waits for its blocks in the
// runtime poller. They take turns at the file (and at everything below
// that says "the capture goroutine's") block by block: a goroutine holds
// mu from the first packet of a block until the block is done, so that a
// packet costs no lock. The file's packets are therefore in order within
// each interface, and interleaved block by block across them, which
// pcapng allows (readers sort by time when they must).
type capture struct {
	ring *rawcap.Ring
	// lo, if set, is the ring on the program's loopback interface
	// (loopback_linux.go).
	lo *loopRing
	// mu is held by the ring goroutine at work; main is the first ring's
	// hold on it.
	mu   sync.Mutex
	main holder
	file *captureFile
	// w is file's current writer; iface the interface's id in it.
	w     pcapng.Writer
	iface int
	// filtered says that the ring has a filter (for the statistics).
	filtered bool
	// limit is the packets to capture (-c), 0 for no limit.
	limit uint64
	// flush writes each packet out at once (-U, -o -).
	flush bool
	// programSide writes directions from the traced program's point of
	// view: the ring sits on the host end of the veth, so what that end
	// receives the program sent.
	programSide bool

	// sum, if set, gets every packet for the connection summary.
	sum *summarizer
	// keys, if set, puts the program's TLS keys before the packets
	// they decrypt.
	keys *keyLog
	// procs, if set (and sum is), names the process behind each new
	// connection, in the summary and on its first packet (procs_linux.go).
	procs *procs
	// eg, if set, judges the connections the program starts against the
	// egress policy (egress.go).
	eg *egress

	// packets and bytes are published for the live counter every 256
	// packets and when run returns; npkts and nbytes are the capture
	// goroutine's own, so that a packet costs no atomic operation.
	packets, bytes atomic.Uint64
	npkts, nbytes  uint64
	loPkts         uint64        // of npkts, those seen on lo; read once run ended
	pkt            pcapng.Packet // reused, so that a packet costs no allocation

	started time.Time
	cancel  context.CancelFunc
	errc    chan error
	err     error // what run returned, once ended
	ended   bool
	// broke says that it ended by itself, before stop.
	broke bool
	// asks are run by the capture goroutine between blocks (ask);
	// exited is closed when that goroutine is gone.
	asks   chan askReq
	exited chan struct{}

	// rotates says that the file has limits (-C, -G); fileStart,
	// fileBase and filePkts are when the current file began, the ring's
	// counters and npkts then. halted says that packets are left out from now on, and
	// haltc tells why (limits_linux.go).
	rotates   bool
	fileStart time.Time
	fileBase  rawcap.Stats
	filePkts  uint64
	halted    bool
	haltc     chan string
}

// newCapture is a capture from ring into file, with o's limits.
func newCapture(ring *rawcap.Ring, file *captureFile, iface int, o *options, live bool) *capture {
	c := &capture{ring: ring, file: file, w: file.w, iface: iface, flush: live,
		filtered: o.filter != "", limit: uint64(o.count), rotates: file.rot.on()}
	c.main.mu = &c.mu
	return c
}

// holder is one ring goroutine's hold on capture.mu.
type holder struct {
	mu   *sync.Mutex
	held bool
}

func (h *holder) hold() {
	if !h.held {
		h.mu.Lock()
		h.held = true
	}
}

func (h *holder) let() {
	if h.held {
		h.held = false
		h.mu.Unlock()
	}
}

// askReq is a function for the capture goroutine, and its answer.
type askReq struct {
	f     func() error
	reply chan error
}

// start runs the capture in a goroutine of its own until stop, or until
// it fails: then its error comes on failed.
func (c *capture) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.started, c.cancel, c.errc = time.Now(), cancel, make(chan error, 1)
	c.asks, c.exited = make(chan askReq, 1), make(chan struct{})
	c.fileStart, c.haltc = c.started, make(chan string, 1)
	go func() {
		defer close(c.exited)
		c.errc <- c.run(ctx)
	}()
}

// ask runs f (nil: nothing) on the capture goroutine between blocks,
// waking it if no packets come, and returns f's error. The counters are
// published first. A capture that has ended runs nothing.
func (c *capture) ask(f func() error) error {
	r := askReq{f: f, reply: make(chan error, 1)}
	select {
	case c.asks <- r:
	case <-c.exited:
		return nil
	}
	c.ring.Wake()
	select {
	case err := <-r.reply:
		return err
	case <-c.exited:
		return nil
	}
}

// between runs after each block of the first ring and on a wake: the
// writer lets go of the block, and a pending ask runs.
func (c *capture) between() error {
	c.main.hold()
	defer c.main.let()
	err := c.w.Release()
	select {
	case r := <-c.asks:
		c.packets.Store(c.npkts)
		c.bytes.Store(c.nbytes)
		var ferr error
		if r.f != nil && err == nil {
			ferr = r.f()
		}
		r.reply <- ferr
	default:
	}
	return err
}

// failed delivers the error of a capture that ended by itself; nil once
// it was received (and given to end).
func (c *capture) failed() <-chan error {
	if c.ended {
		return nil
	}
	return c.errc
}

// end records that the capture ended by itself with err.
func (c *capture) end(err error) { c.err, c.ended, c.broke = err, true, true }

// stop ends a running capture once it has drained the ring, and returns
// its error, as end recorded it if it had ended already.
func (c *capture) stop() error {
	c.cancel()
	if !c.ended {
		c.err, c.ended = <-c.errc, true
	}
	return c.err
}

// run captures until ctx is done and the rings are drained, or until one
// of them fails: then the other one stops too.
func (c *capture) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var loErr error
	var wg sync.WaitGroup
	if c.lo != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loErr = c.runLoopback(ctx)
			if loErr != nil {
				cancel()
			}
		}()
	}
	// Large packets go to the file straight from the ring (writev), with
	// no copy into the writer's buffer: the writer releases them at the
	// end of each block, before the ring hands the block back.
	err := c.ring.RunBlocks(ctx, c.handle, c.between)
	c.main.let() // held if RunBlocks failed between a packet and its block's end
	if err != nil {
		cancel()
	}
	wg.Wait()
	if err == nil {
		err = loErr
	}
	c.packets.Store(c.npkts)
	c.bytes.Store(c.nbytes)
	return err
}

func (c *capture) handle(p *rawcap.Packet) error {
	c.main.hold()
	dir, rec := direction(p.Type, p.Data, c.programSide)
	return c.write(p, c.iface, dir, rec, false)
}

// write writes a packet seen on interface iface, with direction dir and
// reception rec, and accounts it; loop says it was seen on the program's
// lo. The caller holds mu.
func (c *capture) write(p *rawcap.Packet, iface int, dir pcapng.Direction, rec pcapng.Reception, loop bool) error {
	if c.rotates && !c.halted {
		if err := c.beforePacket(p.Timestamp); err != nil {
			return err
		}
	}
	if c.halted {
		return nil
	}
	c.pkt.Direction, c.pkt.Reception = dir, rec
	if c.keys != nil {
		if err := c.keys.before(p.Data, p.Timestamp, dir, c.w); err != nil {
			return err
		}
	}
	c.pkt.Interface = iface
	c.pkt.Timestamp = p.Timestamp
	c.pkt.Length = p.Length
	c.pkt.Data = p.Data
	// The summary first: it tells whether this packet starts a
	// connection, whose first packet carries the process behind it and
	// the egress policy's verdict.
	switch {
	case loop:
		c.loPkts++
		if c.sum != nil {
			c.sum.feedLoopback(p)
		}
	case c.sum != nil:
		c.sum.feed(p, dir)
		if c.procs != nil || c.eg != nil {
			if nc, ok := c.sum.flows.TakeNew(); ok {
				c.pkt.Comment = c.firstComment(nc, p.Timestamp)
			}
		}
	}
	var err error
	if p.InRing && len(p.Data) >= pcapng.MinRefLen {
		err = c.w.WritePacketRef(&c.pkt)
	} else {
		err = c.w.WritePacket(&c.pkt)
	}
	c.pkt.Comment = ""
	if err != nil {
		return err
	}
	c.npkts++
	c.nbytes += uint64(p.Length)
	if c.limit > 0 {
		c.afterPacket()
	}
	if c.npkts&255 == 0 {
		c.packets.Store(c.npkts)
		c.bytes.Store(c.nbytes)
	}
	if c.flush {
		return c.w.Flush()
	}
	return nil
}

// firstComment is the comment of nc's first packet, captured at ts: the
// process behind it (procs) and, for a connection the program started
// that the egress policy does not allow, the violation; "" if neither.
// Only packets that start conversations come here.
func (c *capture) firstComment(nc summary.NewConv, ts int64) string {
	var who, verdict string
	if c.procs != nil {
		who = c.procs.attribute(c.sum.flows, nc)
	}
	if c.eg != nil && nc.Initiated {
		verdict = c.eg.comment(nc.Remote, nc.Proto, ts)
	}
	switch {
	case who == "":
		return verdict
	case verdict == "":
		return who
	}
	return who + "; " + verdict
}

// direction returns the epb_flags direction and reception type of a packet
// of type t seen on a packet socket. Seen on an interface (programSide
// false) they are the kernel's; seen on the host end of the traced
// program's veth (programSide true) they are the program's: what the host
// end sends, the program receives, and how it receives it (unicast,
// multicast, broadcast) follows from the destination MAC address.
func direction(t rawcap.PacketType, data []byte, programSide bool) (pcapng.Direction, pcapng.Reception) {
	if !programSide {
		switch t {
		case rawcap.PacketOutgoing:
			return pcapng.DirectionOutbound, pcapng.ReceptionUnknown
		case rawcap.PacketHost:
			return pcapng.DirectionInbound, pcapng.ReceptionUnicast
		case rawcap.PacketBroadcast:
			return pcapng.DirectionInbound, pcapng.ReceptionBroadcast
		case rawcap.PacketMulticast:
			return pcapng.DirectionInbound, pcapng.ReceptionMulticast
		case rawcap.PacketOtherHost:
			return pcapng.DirectionInbound, pcapng.ReceptionPromiscuous
		}
		return pcapng.DirectionUnknown, pcapng.ReceptionUnknown
	}
	if t != rawcap.PacketOutgoing {
		return pcapng.DirectionOutbound, pcapng.ReceptionUnknown
	}
	switch {
	case len(data) < 6:
		return pcapng.DirectionInbound, pcapng.ReceptionUnknown
	case data[0]&data[1]&data[2]&data[3]&data[4]&data[5] == 0xff:
		return pcapng.DirectionInbound, pcapng.ReceptionBroadcast
	case data[0]&1 != 0: // the group bit
		return pcapng.DirectionInbound, pcapng.ReceptionMulticast
	}
	return pcapng.DirectionInbound, pcapng.ReceptionUnicast
}

// isbStats turns the ring's counters into an interface statistics block.
// The kernel counts what passed the filter (tp_packets, drops included)
// and what it dropped for want of ring space (tp_drops); without a filter
// the former is also everything the interface received.
func isbStats(start time.Time, st rawcap.Stats, err error, filtered bool) pcapng.Stats {
	s := pcapng.Stats{StartTime: start.UnixNano(), EndTime: time.Now().UnixNano()}
	if err != nil {
		return s // counters unknown: say nothing rather than zero
	}
	s.FilterAccept, s.HasFilterAccept = st.Packets, true
	s.OSDrop, s.HasOSDrop = st.Drops, true
	if !filtered {
		s.Received, s.HasReceived = st.Packets, true
	}
	return s
}
