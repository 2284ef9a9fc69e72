package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// exitError is a failure that ends nsntrace with a given status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func failf(code int, format string, args ...any) error {
	return &exitError{code, fmt.Errorf(format, args...)}
}

// exitCodeOf maps an error to nsntrace's exit status.
func exitCodeOf(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

// lookProgram finds the program as a shell would: 127 when there is
// nothing of that name, 126 when it is there but cannot be executed.
func lookProgram(name string) (string, error) {
	p, err := exec.LookPath(name)
	if errors.Is(err, exec.ErrDot) {
		err = nil // "." in $PATH: the user asked for it, as a shell allows
	}
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrPermission):
		return "", failf(exitCannotExecute, "%s: permission denied", name)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, exec.ErrNotFound):
		return "", failf(exitNotFound, "%s: command not found", name)
	default: // there, but not a program (a directory, ...)
		var ee *exec.Error
		if errors.As(err, &ee) {
			err = ee.Err
		}
		return "", failf(exitCannotExecute, "%s: %v", name, err)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", failf(exitFailure, "%s: %v", name, err)
	}
	return abs, nil
}

func execErrorText(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "command not found"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// shbComment says what was traced, where and by which nsntrace.
func shbComment(argv []string) string {
	host, err := os.Hostname()
	if err != nil {
		host = "(unknown host)"
	}
	return fmt.Sprintf("nsntrace %s traced `%s` on %s", version, quoteShort(argv), host)
}

func osName() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "Linux"
	}
	return unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
}

func machine() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Machine[:])
}
