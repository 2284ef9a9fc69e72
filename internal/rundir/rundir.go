// Package rundir names the one directory on the host where nsntrace keeps
// state shared between runs: the lock taken while a run picks its names
// and subnet, and the records of runs that enabled IP forwarding.
//
// It lives on /run (a tmpfs on every systemd and most busybox systems), so
// that a reboot empties it: nothing in it outlives the kernel state it
// describes.
package rundir

import "path/filepath"

// Dir is the directory itself.
const Dir = "/run/nsntrace"

// Path returns the path of elem under Dir.
func Path(elem ...string) string {
	return filepath.Join(append([]string{Dir}, elem...)...)
}
