package rawcap

import "time"

// The reader wakes for each block the kernel hands over, and on a busy
// link that was a wake-up every few milliseconds: each costs a system
// call, a pass through the scheduler and, on a VM, the idle CPU's exit and
// entry, which the capture pays in cold caches. On the development VM a
// wake-up cost the capture about 50 µs of CPU, a tenth of its time at
// 300,000 small packets a second; twice as large blocks took a tenth off
// the CPU a packet, four times as large a third, but the kernel's
// higher-order allocations made starts slower (BlockSizeFor). So the
// reader paces itself instead: when blocks come faster than maxPause
// apart, it sleeps up to maxPause before it waits for the next one, and
// reads all that came meanwhile in one go. The sleep is short enough
// that at the rate seen at most a quarter of the ring fills during it,
// and is never taken on a ring of fewer than minPaceBlocks blocks; a stop
// or Wake ends it at once.
//
// Only full blocks count as a busy link: the kernel also hands a block
// over when the block timeout passes with packets in it, and a live
// capture (a 10 ms timeout) on a trickle of packets would otherwise be
// paced, adding up to maxPause to the latency the short timeout is there
// to keep low. So blocks must come less than half the timeout apart (the
// retire timer counts in jiffies and may fire early), and a sleep never
// lasts longer than the timeout.
const (
	maxPause      = 20 * time.Millisecond
	minPaceBlocks = 8
)

// pacer decides how long the reader sleeps before it waits for a block.
type pacer struct {
	tov  time.Duration // the ring's block timeout
	last time.Time     // when the reader last found blocks ready
}

// next returns the sleep before the next wait, now that the reader found
// n blocks ready at now in a ring of nblocks blocks: zero when it found
// none (it was woken for something else), when blocks come maxPause or
// half the block timeout apart or more, or when it is falling behind.
func (p *pacer) next(n int, now time.Time, nblocks int) time.Duration {
	if n == 0 {
		return 0
	}
	prev := p.last
	p.last = now
	if prev.IsZero() || nblocks < minPaceBlocks || n > nblocks/4 {
		return 0
	}
	every := now.Sub(prev) / time.Duration(n) // how often a block came
	if every >= min(maxPause, p.tov/2) {
		return 0
	}
	return min(maxPause, p.tov, every*time.Duration(nblocks/4))
}
