//go:build linux

package main

import (
	"io"
	"os"

	"github.com/nsntrace/nsntrace/nft"
)

// cleanup removes what crashed runs left behind. The veth and the
// namespace die with the traced program's last process, and a kernel
// that supports owner-flagged nft tables deletes ours itself; what can
// outlive a crash is an nft table on older kernels, accept rules in other
// tables' forward chains, and IP forwarding records (see nft.Sweep).
func cleanup(o *options, stderr io.Writer) int {
	rep := newReporter(stderr, o.quiet)
	if os.Geteuid() != 0 {
		rep.errorf("--cleanup must run as root")
		return exitFailure
	}
	done, err := nft.Sweep()
	for _, d := range done {
		rep.infof("Cleanup: %s.", d)
	}
	if err != nil {
		rep.errorf("remove leftovers of crashed runs: %v", err)
		return exitFailure
	}
	if len(done) == 0 {
		rep.infof("Nothing left behind by crashed runs.")
	}
	return 0
}
