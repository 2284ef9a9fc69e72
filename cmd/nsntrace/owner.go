package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/nsntrace/nsntrace/child"
)

// fileOwner is who the files nsntrace writes (captures, summary) belong
// to; nil leaves them to whoever nsntrace runs as.
type fileOwner struct {
	uid, gid int
}

// resolveOwner finds who owns the files: -Z USER (name or UID, as -u),
// else, when root runs nsntrace through sudo(8), the user who ran sudo
// (SUDO_UID and SUDO_GID), as people expect of a file they asked for;
// else nobody in particular (nil). getenv is os.Getenv, or a test's.
func resolveOwner(o *options, euid int, getenv func(string) string) (*fileOwner, error) {
	if o.owner != "" {
		u, err := child.LookupUser(o.owner)
		if err != nil {
			return nil, fmt.Errorf("-Z %s: %v", o.owner, err)
		}
		return &fileOwner{uid: int(u.Uid), gid: int(u.Gid)}, nil
	}
	if euid != 0 || getenv("SUDO_UID") == "" {
		return nil, nil
	}
	uid, err := parseID(getenv("SUDO_UID"))
	if err != nil {
		return nil, fmt.Errorf("SUDO_UID=%q: %v: unset it, or name the files' owner with -Z USER", getenv("SUDO_UID"), err)
	}
	gid, err := parseID(getenv("SUDO_GID"))
	if err != nil {
		return nil, fmt.Errorf("SUDO_GID=%q: %v: unset SUDO_UID, or name the files' owner with -Z USER", getenv("SUDO_GID"), err)
	}
	return &fileOwner{uid: uid, gid: gid}, nil
}

// parseID parses a numeric user or group ID, as sudo sets them.
func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == math.MaxUint32 { // (uid_t)-1 means "unchanged" to chown(2)
		return 0, errors.New("not a numeric ID")
	}
	return int(n), nil
}

// give makes f belong to the owner, if there is one and f is a regular
// file: a FIFO or a device that existed before keeps its owner. It wraps
// fchown(2), on the open file, so no rename or link can redirect it.
func (w *fileOwner) give(f *os.File) error {
	if w == nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("give %s to uid %d: %w", f.Name(), w.uid, err)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	if err := f.Chown(w.uid, w.gid); err != nil {
		return fmt.Errorf("give %s to uid %d: %w", f.Name(), w.uid, err)
	}
	return nil
}
