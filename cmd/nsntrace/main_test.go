package main

import (
	"os"
	"runtime"
	"testing"
)

// TestOneP: nsntrace takes one P, unless the user set GOMAXPROCS.
func TestOneP(t *testing.T) {
	prev := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	t.Setenv("GOMAXPROCS", "2")
	oneP()
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Errorf("with GOMAXPROCS=2 set: %d Ps", n)
	}
	os.Unsetenv("GOMAXPROCS") // t.Setenv puts it back
	oneP()
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Errorf("without GOMAXPROCS: %d Ps, want 1", n)
	}
}
