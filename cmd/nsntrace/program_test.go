package main

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
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

// TestExecErrorText checks that ENOENT for a program that exists names its
// missing interpreter rather than saying "command not found".
func TestExecErrorText(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/nonexistent/bash -e\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&os.PathError{Op: "exec", Path: script, Err: syscall.ENOENT}, "bad interpreter /nonexistent/bash: no such file or directory (fix the #! line)"},
		{&os.PathError{Op: "exec", Path: filepath.Join(dir, "gone"), Err: syscall.ENOENT}, "command not found"},
		{&os.PathError{Op: "exec", Path: script, Err: syscall.EACCES}, "permission denied"},
		{&os.PathError{Op: "exec", Path: script, Err: syscall.ENOEXEC}, "exec format error"},
	} {
		if got := execErrorText(tc.err); got != tc.want {
			t.Errorf("execErrorText(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
