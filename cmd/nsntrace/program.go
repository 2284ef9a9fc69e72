package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

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

// execErrorText words an exec failure as a shell would.
func execErrorText(err error) string {
	var pe *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// execve(2) says ENOENT for a missing interpreter too; the
		// program itself was found before the run, so look again.
		if errors.As(err, &pe) {
			if _, serr := os.Stat(pe.Path); serr == nil {
				return badInterpreter(pe.Path)
			}
		}
		return "command not found"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// badInterpreter names the missing interpreter of the script at path.
func badInterpreter(path string) string {
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		line, _ := bufio.NewReader(io.LimitReader(f, 256)).ReadString('\n')
		if rest, ok := strings.CutPrefix(line, "#!"); ok {
			if fs := strings.Fields(rest); len(fs) > 0 {
				return fmt.Sprintf("bad interpreter %s: no such file or directory (fix the #! line)", fs[0])
			}
		}
	}
	return "its interpreter was not found (see its #! line)"
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
