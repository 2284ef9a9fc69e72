package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// output is the capture file: checked first, created only once every
// other check passed, and removed again when the run fails before the
// program started, so that a failed run leaves nothing behind.
type output struct {
	path    string // "-" is standard output
	f       *os.File
	created bool // we made the file (it did not exist before)
}

func (o *output) stdout() bool { return o.path == "-" }

// name is how messages call the output.
func (o *output) name() string {
	if o.stdout() {
		return "standard output"
	}
	return o.path
}

// check tells whether the output can be written, without creating or
// truncating anything.
func (o *output) check() error {
	if o.stdout() {
		return nil
	}
	fi, err := os.Stat(o.path)
	switch {
	case err == nil:
		if fi.IsDir() {
			return fmt.Errorf("cannot write output %s: %w", o.path, unix.EISDIR)
		}
		// Opening for writing without O_TRUNC changes nothing, and asks
		// the kernel itself (read-only mounts, immutable files, ...).
		f, err := os.OpenFile(o.path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("cannot write output: %w", err)
		}
		return f.Close()
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(o.path)
		di, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("cannot write output %s: %w", o.path, err)
		}
		if !di.IsDir() {
			return fmt.Errorf("cannot write output %s: %s: %w", o.path, dir, unix.ENOTDIR)
		}
		// access(2) honours read-only mounts even for root.
		if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
			return fmt.Errorf("cannot write output %s: %w", o.path, &fs.PathError{Op: "access", Path: dir, Err: err})
		}
		return nil
	default:
		return fmt.Errorf("cannot write output: %w", err)
	}
}

// create opens the output for writing (truncating an existing file).
func (o *output) create() error {
	if o.stdout() {
		o.f = os.Stdout
		return nil
	}
	if f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err == nil {
		o.f, o.created = f, true
		return nil
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create output: %w", err)
	}
	o.f = f
	return nil
}

// close closes a file output (standard output stays open).
func (o *output) close() error {
	if o.f == nil || o.stdout() {
		return nil
	}
	err := o.f.Close()
	o.f = nil
	if err != nil {
		return fmt.Errorf("close output: %w", err)
	}
	return nil
}

// abort closes the output and removes it if this run created it: a run
// that failed before the program started leaves nothing behind. A file
// that existed before (truncated by create, or a device like /dev/null)
// is not removed.
func (o *output) abort() {
	o.close() // the file is going away; a close error says nothing more
	if o.created {
		os.Remove(o.path) // best effort: the run failed already
	}
}
