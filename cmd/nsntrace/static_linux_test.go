package main

import (
	"debug/elf"
	"testing"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// The binary must run on minimal systems: no dynamic loader, no libc.
func TestStaticBinary(t *testing.T) {
	f, err := elf.Open(testbed.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %v program header: not statically linked", p.Type)
		}
	}
}
