// Package rundir names the one directory on the host where nsntrace keeps
// state shared between runs: the lock taken while a run picks its names
// and subnet, and the records of runs that enabled IP forwarding.
//
// It lives on /run (a tmpfs on every systemd and most busybox systems), so
// that a reboot empties it: nothing in it outlives the kernel state it
// describes.
package rundir

import "path/filepath"

// Dir is the directory itself. It is not /run/nsntrace, the C nsntrace's:
// version 4 of that tool (Debian's) removes /run/nsntrace and everything in
// it when it exits, which took the lock and the forwarding records of any
// run of ours beside it (a host left with ip_forward=1 for good).
const Dir = "/run/nsntrace-state"

// Legacy is where nsntrace kept its state before; sweeps still read the
// forwarding records that older versions left there.
const Legacy = "/run/nsntrace"

// Path returns the path of elem under Dir.
func Path(elem ...string) string {
	return filepath.Join(append([]string{Dir}, elem...)...)
}
