package main

import (
	"debug/buildinfo"
	"debug/elf"
	"strings"
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

// The man page and completion generator is for `make docs`, not for the
// binary users copy onto their systems.
func TestBinaryWithoutDocGenerator(t *testing.T) {
	info, err := buildinfo.ReadFile(testbed.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range info.Deps {
		if strings.Contains(d.Path, "md2man") || strings.Contains(d.Path, "blackfriday") || strings.Contains(d.Path, "yaml") {
			t.Errorf("the binary links %s, a part of the documentation generator", d.Path)
		}
	}
}
