//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/child"
)

// waited is how the program's init ended, and the signal that stopped
// the trace, if one did.
type waited struct {
	st     child.Status
	err    error
	signal os.Signal
}

// supervise waits for the program (and, with --wait-all, all it started)
// to end, while it passes the user's stop signals on: the first is
// SIGTERM with a grace period, a second or the end of the grace period
// SIGKILL. A capture that fails stops the program the same way, and so
// do the ends the user asked for: -c COUNT packets, --duration, the last
// file of -G with -W (then the status is the program's: waited.signal
// stays nil). SIGUSR1 and SIGUSR2 are answered on the way.
func (t *tracer) supervise(p *child.Process, c *capture, sigc <-chan os.Signal) waited {
	waitc := make(chan waited, 1)
	go func() {
		st, err := p.Wait()
		waitc <- waited{st: st, err: err}
	}()
	var (
		grace    <-chan time.Time
		stopSig  os.Signal
		deadline <-chan time.Time
	)
	if t.o.duration > 0 {
		deadline = time.After(t.o.duration)
	}
	stop := func(why string) {
		if grace == nil {
			t.rep.infof("%s: stopping %s (SIGTERM; ctrl-c again to kill it at once).", why, t.argv[0])
			p.Signal(unix.SIGTERM) // fails only once the program is gone
			grace = time.After(gracePeriod)
			return
		}
		t.rep.infof("%s: killing %s.", why, t.argv[0])
		p.Kill()
	}
	for {
		select {
		case r := <-waitc:
			r.signal = stopSig
			return r
		case s := <-sigc:
			if infoSignal(s, c, t.file, t.rep) {
				continue
			}
			if stopSig == nil {
				stopSig = s
			}
			stop(signalName(s))
		case why := <-c.halts():
			stop(why)
		case <-deadline:
			stop(fmt.Sprintf("--duration %v passed", t.o.duration))
		case <-grace:
			t.rep.infof("%s did not end within %v: killing it.", t.argv[0], gracePeriod)
			p.Kill()
		case err := <-c.failed():
			c.end(err)
			if errors.Is(err, unix.EPIPE) {
				stop("the reader of standard output went away")
			} else {
				t.rep.errorf("capture failed: %v", err)
				stop("capture failed")
			}
		}
	}
}
