package main

import (
	"testing"
	"time"
)

// TestCPULine: one line of /proc/stat in USER_HZ ticks, as proc(5) lays
// it out: busy is user+nice+system+irq+softirq, steal alone, all adds
// idle and iowait; guest time (already in user) is not added again.
func TestCPULine(t *testing.T) {
	var busy, steal, all time.Duration
	if err := cpuLine("cpu1 100 2 30 400 5 6 7 8 90 0", "cpu1", &busy, &steal, &all); err != nil {
		t.Fatal(err)
	}
	tick := time.Second / 100
	if want := (100 + 2 + 30 + 6 + 7) * tick; busy != want {
		t.Errorf("busy %v, want %v", busy, want)
	}
	if want := 8 * tick; steal != want {
		t.Errorf("steal %v, want %v", steal, want)
	}
	if want := (100 + 2 + 30 + 6 + 7 + 400 + 5 + 8) * tick; all != want {
		t.Errorf("all %v, want %v", all, want)
	}
	for _, bad := range []string{"cpu10 1 2 3 4 5 6 7 8", "cpu1 1 2 3", "cpu1 1 2 x 4 5 6 7 8"} {
		if err := cpuLine(bad, "cpu1", &busy, &steal, &all); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
