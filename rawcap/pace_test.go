package rawcap

import (
	"testing"
	"time"
)

// TestPacer: no pause after a wake that found nothing, after the first
// blocks, on a small ring, when the reader is behind (more than a quarter
// of the ring ready), or when blocks come maxPause or half the block
// timeout apart or more (a live capture's trickle, handed over by the
// timeout); else a pause of at most maxPause and the block timeout in
// which, at the rate seen, at most a quarter of the ring fills.
func TestPacer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, c := range []struct {
		name    string
		gap     time.Duration // since the last wake that found blocks (0: none before)
		n       int
		nblocks int
		tov     time.Duration
		want    time.Duration
	}{
		{"first wake", 0, 1, 256, DefaultBlockTimeout, 0},
		{"nothing ready", 5 * time.Millisecond, 0, 256, DefaultBlockTimeout, 0},
		{"slow link", 100 * time.Millisecond, 1, 256, DefaultBlockTimeout, 0},
		{"a block every maxPause", maxPause, 1, 256, DefaultBlockTimeout, 0},
		{"a block every 5 ms", 5 * time.Millisecond, 1, 256, DefaultBlockTimeout, maxPause},
		{"four blocks in 10 ms", 10 * time.Millisecond, 4, 256, DefaultBlockTimeout, maxPause},
		{"small ring", 5 * time.Millisecond, 1, minPaceBlocks - 1, DefaultBlockTimeout, 0},
		{"behind", 5 * time.Millisecond, 65, 256, DefaultBlockTimeout, 0},
		// 8 blocks: a quarter is 2, two blocks' time at one per 3 ms.
		{"a quarter of a small ring", 3 * time.Millisecond, 1, 8, DefaultBlockTimeout, 6 * time.Millisecond},
		// A live capture (-o -): a 10 ms timeout.
		{"live, blocks by timeout", 9 * time.Millisecond, 1, 256, 10 * time.Millisecond, 0},
		{"live, full blocks", 2 * time.Millisecond, 1, 256, 10 * time.Millisecond, 10 * time.Millisecond},
	} {
		p := pacer{tov: c.tov}
		if c.gap > 0 {
			p.last = t0
		}
		if got := p.next(c.n, t0.Add(c.gap), c.nblocks); got != c.want {
			t.Errorf("%s: pause %v, want %v", c.name, got, c.want)
		}
	}
	// A wake that found nothing does not move the last one.
	p := pacer{tov: DefaultBlockTimeout, last: t0}
	p.next(0, t0.Add(time.Millisecond), 256)
	if !p.last.Equal(t0) {
		t.Errorf("a wake that found nothing moved the last one to %v", p.last)
	}
}
