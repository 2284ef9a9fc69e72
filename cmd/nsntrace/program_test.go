package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLookProgram(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "prog")
	noexec := filepath.Join(dir, "data")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	t.Setenv("PATH", dir+":/nonexistent")

	if p, err := lookProgram("prog"); err != nil || p != exe {
		t.Errorf("lookProgram(prog) = %q, %v; want %q", p, err, exe)
	}
	if p, err := lookProgram(exe); err != nil || p != exe {
		t.Errorf("lookProgram(%s) = %q, %v", exe, p, err)
	}
	t.Chdir(dir)
	if p, err := lookProgram("./prog"); err != nil || p != exe {
		t.Errorf("lookProgram(./prog) = %q, %v; want the absolute %q", p, err, exe)
	}
	for _, tc := range []struct {
		name string
		code int
	}{
		{"no-such-program", exitNotFound},
		{"./no-such-program", exitNotFound},
		{"data", exitNotFound}, // not executable in $PATH: skipped, as a shell does
		{noexec, exitCannotExecute},
		{dir, exitCannotExecute},
	} {
		_, err := lookProgram(tc.name)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != tc.code {
			t.Errorf("lookProgram(%s) = %v, want exit %d", tc.name, err, tc.code)
		}
	}
}
