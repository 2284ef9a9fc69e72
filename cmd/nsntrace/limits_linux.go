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
	stats, st, lst := c.fileStatsNow()
	if err := c.file.next(c.sum, stats); err != nil {
		return err
	}
	c.w = c.file.w
	c.fileStart, c.fileBase, c.filePkts = time.Now(), st, c.npkts
	if c.lo != nil {
		c.lo.base = lst
	}
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

// fileStats is the statistics block of the current file, from a ring's
// counters now (st, read with err) and when the file began (base): what
// the kernel counted since.
func (c *capture) fileStats(st, base rawcap.Stats, err error) pcapng.Stats {
	d := rawcap.Stats{Packets: st.Packets - base.Packets, Drops: st.Drops - base.Drops}
	return isbStats(c.fileStart, d, err, c.filtered)
}

// fileStatsNow reads the rings' counters and returns the statistics
// blocks of the current file, one for each interface, with the counters
// read: the first ring's and lo's (zero without it).
func (c *capture) fileStatsNow() (stats []ifaceStats, st, lst rawcap.Stats) {
	st, err := c.ring.Stats()
	stats = append(stats, ifaceStats{c.iface, c.fileStats(st, c.fileBase, err)})
	if c.lo != nil {
		lst, err = c.lo.ring.Stats()
		stats = append(stats, ifaceStats{c.lo.iface, c.fileStats(lst, c.lo.base, err)})
	}
	return stats, st, lst
}

// endStats reads the rings' counters once the capture ended: the
// statistics blocks of the current file, the kernel's counters summed
// over the rings, and the first error reading them.
func (c *capture) endStats() ([]ifaceStats, rawcap.Stats, error) {
	st, err := c.ring.Stats()
	stats := []ifaceStats{{c.iface, c.fileStats(st, c.fileBase, err)}}
	if c.lo != nil {
		lst, lerr := c.lo.ring.Stats()
		stats = append(stats, ifaceStats{c.lo.iface, c.fileStats(lst, c.lo.base, lerr)})
		st = addStats(st, lst)
		if err == nil {
			err = lerr
		}
	}
	return stats, st, err
}

// kernelStats is the kernel's counters summed over the rings, and the
// first error reading them. Any goroutine may call it.
func (c *capture) kernelStats() (rawcap.Stats, error) {
	st, err := c.ring.Stats()
	if c.lo != nil {
		lst, lerr := c.lo.ring.Stats()
		st = addStats(st, lst)
		if err == nil {
			err = lerr
		}
	}
	return st, err
}

func addStats(a, b rawcap.Stats) rawcap.Stats {
	return rawcap.Stats{Packets: a.Packets + b.Packets, Drops: a.Drops + b.Drops, FreezeQueue: a.FreezeQueue + b.FreezeQueue}
}
