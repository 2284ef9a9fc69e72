//go:build linux

package main

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestCloseAside: Close runs its steps in reverse, a step added with
// doAside beside the steps after it (a slow one does not hold them up),
// and returns only once that step has ended.
func TestCloseAside(t *testing.T) {
	var s session
	var order []string
	var asideDone atomic.Bool
	release := make(chan struct{})
	// Added first, run last: only then may the aside step end.
	s.do(func() {
		order = append(order, "first")
		close(release)
	})
	s.doAside(func() {
		<-release
		time.Sleep(20 * time.Millisecond)
		asideDone.Store(true)
	})
	s.do(func() { order = append(order, "last") })
	done := make(chan struct{})
	go func() {
		s.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return: it waited for the aside step before running the steps after it")
	}
	if !asideDone.Load() {
		t.Error("Close returned before the aside step ended")
	}
	if len(order) != 2 || order[0] != "last" || order[1] != "first" {
		t.Errorf("steps ran in the order %v, want [last first]", order)
	}
}
