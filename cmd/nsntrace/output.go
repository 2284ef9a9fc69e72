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
//
// An existing regular file keeps its content until the run is kept: the
// capture goes to a temporary file beside it, renamed over it by close.
// Anything else that exists (a FIFO, a device) is opened once, by check,
// and written in place: a second open would show a FIFO's reader an
// end of file, and block until another reader came.
type output struct {
	path    string // "-" is standard output
	f       *os.File
	created bool   // we made the file (it did not exist before)
	tmp     string // the temporary file that replaces an existing one
	target  string // the file tmp replaces (path with its links resolved)
	owner   *fileOwner
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
		// the kernel itself (read-only mounts, immutable files, ...). A
		// FIFO's open waits for a reader, before anything exists that a
		// signal would have to remove.
		f, err := os.OpenFile(o.path, os.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("cannot write output: %w", err)
		}
		if !fi.Mode().IsRegular() {
			o.f = f // written in place: see output
			return nil
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("cannot write output: %w", err)
		}
		// The temporary file goes beside the file itself, not beside a
		// link to it, so that the rename replaces the file.
		if o.target, err = filepath.EvalSymlinks(o.path); err != nil {
			return fmt.Errorf("cannot write output: %w", err)
		}
		return checkDir(o.path, filepath.Dir(o.target))
	case errors.Is(err, fs.ErrNotExist):
		return checkDir(o.path, filepath.Dir(o.path))
	default:
		return fmt.Errorf("cannot write output: %w", err)
	}
}

// checkDir tells whether a file can be created in dir, for output path.
func checkDir(path, dir string) error {
	di, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cannot write output %s: %w", path, err)
	}
	if !di.IsDir() {
		return fmt.Errorf("cannot write output %s: %s: %w", path, dir, unix.ENOTDIR)
	}
	// access(2) honours read-only mounts even for root.
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("cannot write output %s: %w", path, &fs.PathError{Op: "access", Path: dir, Err: err})
	}
	return nil
}

// create opens the output for writing. An existing regular file is left
// as it is until close.
func (o *output) create() error {
	switch {
	case o.stdout():
		o.f = os.Stdout
		return nil
	case o.f != nil: // opened by check
		return nil
	case o.target != "":
		f, err := os.CreateTemp(filepath.Dir(o.target), "."+filepath.Base(o.target)+".nsntrace-*")
		if err != nil {
			return fmt.Errorf("create output: %w", err)
		}
		o.f, o.tmp = f, f.Name()
		// CreateTemp makes it 0600; a capture file is 0644 like a new one.
		if err := f.Chmod(0o644); err != nil {
			o.abort()
			return fmt.Errorf("create output: %w", err)
		}
		return o.give()
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("create output: %w", err)
	}
	o.f, o.created = f, true
	return o.give()
}

// give makes the file this run created belong to the files' owner.
func (o *output) give() error {
	if err := o.owner.give(o.f); err != nil {
		o.abort()
		return fmt.Errorf("create output: %w", err)
	}
	return nil
}

// close closes a file output (standard output stays open) and keeps it:
// a temporary file replaces the file it stands for.
func (o *output) close() error {
	if o.f == nil || o.stdout() {
		return nil
	}
	err := o.f.Close()
	o.f = nil
	if err != nil {
		o.abort()
		return fmt.Errorf("close output: %w", err)
	}
	if o.tmp != "" {
		if err := os.Rename(o.tmp, o.target); err != nil {
			o.abort()
			return fmt.Errorf("replace %s: %w", o.path, err)
		}
		o.tmp = ""
	}
	o.created = false // kept: abort has nothing to remove
	return nil
}

// abort closes the output and removes what this run created: a run that
// failed before the program started leaves nothing behind, and a file
// that existed before keeps its content.
func (o *output) abort() {
	if o.f != nil && !o.stdout() {
		o.f.Close() // the file is going away; a close error says nothing more
	}
	o.f = nil
	if o.tmp != "" {
		os.Remove(o.tmp) // best effort: the run failed already
		o.tmp = ""
	}
	if o.created {
		os.Remove(o.path) // best effort: the run failed already
		o.created = false
	}
}
