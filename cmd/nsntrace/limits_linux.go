//go:build linux

package main

import (
	"fmt"
	"time"

	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
)

// The capture's limits, checked on the capture goroutine before each
// packet, so that a packet goes whole to exactly one file, or to none
// once the capture is halted: rotation to a new file (-C, -G), and the
// ends the user asked for (-c, the last file of -G with -W).

// beforePacket starts a new file when the current one is due (ts is the
// packet's time), or halts the capture when the last one is full.
func (c *capture) beforePacket(ts int64) error {
	r := c.file.rot
	due := r.size > 0 && c.w.Size() > r.size ||
		r.every > 0 && ts-c.fileStart.UnixNano() >= int64(r.every)
	// A file holds a packet at least, even when its headers alone (the
	// command line, quoted twice) are larger than -C.
	if !due || c.npkts == c.filePkts {
		return nil
	}
	if last := r.lastFile(); last > 0 && c.file.files() >= last {
		c.halt(fmt.Sprintf("-W %d: %d files written", last, last))
		return nil
	}
	st, err := c.ring.Stats()
	if err := c.file.next(c.sum, c.iface, c.fileStats(st, err)); err != nil {
		return err
	}
	c.w = c.file.w
	c.fileStart, c.fileBase, c.filePkts = time.Now(), st, c.npkts
	return nil
}

// afterPacket halts the capture once it holds the packets asked for.
func (c *capture) afterPacket() {
	if c.npkts == c.limit {
		c.halt(fmt.Sprintf("-c %d: %s captured", c.limit, plural(c.npkts, "packet", "packets")))
	}
}

// halt ends the capture's writing: later packets are left out, and why
// comes on halted for the trace to end as the user asked.
func (c *capture) halt(why string) {
	c.halted = true
	c.haltc <- why // buffered; sent once
}

// halts delivers why the capture halted, once.
func (c *capture) halts() <-chan string { return c.haltc }

// fileStats is the statistics block of the current file, from the ring's
// counters now (st, read with err): what the kernel counted since the
// file began.
func (c *capture) fileStats(st rawcap.Stats, err error) pcapng.Stats {
	d := rawcap.Stats{Packets: st.Packets - c.fileBase.Packets, Drops: st.Drops - c.fileBase.Drops}
	return isbStats(c.fileStart, d, err, c.filtered)
}
