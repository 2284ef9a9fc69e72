//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/summary"
	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
)

// captureInterface captures an existing interface with the same ring and
// writer a trace uses, until a stop signal (see stopSignals): the capture engine alone,
// for `make bench` to compare with tcpdump and netsniff-ng. At the end it
// prints the counters on stderr as tcpdump does.
func captureInterface(o *options, stdout, stderr io.Writer) int {
	rep := newReporter(stderr, o.quiet)
	code, err := captureIface(o, rep, stdout)
	if err != nil {
		rep.errorf("%v", err)
	}
	return code
}

func captureIface(o *options, rep *reporter, stdout io.Writer) (int, error) {
	prog, file, err := prepareCapture(o)
	if err != nil {
		return exitFailure, err
	}
	ifi, err := net.InterfaceByName(o.iface)
	if err != nil {
		return exitFailure, fmt.Errorf("interface %s: %w", o.iface, err)
	}
	sigc, release := catchSignals()
	defer release()

	live := o.packetBuffered || file.stdout()
	ring, err := rawcap.Open(ifi.Index, ringConfig(o, prog, live))
	if err != nil {
		return exitFailure, fmt.Errorf("open capture on %s: %w", ifi.Name, err)
	}
	defer ring.Close()
	if err := file.create(fmt.Sprintf("nsntrace %s captured interface %s", version, ifi.Name)); err != nil {
		return exitFailure, err
	}
	defer file.abort() // unless kept
	id, err := file.addInterface(pcapng.Interface{SnapLen: uint32(o.snapLen), Name: ifi.Name, Filter: o.filter})
	if err != nil {
		return exitFailure, err
	}
	c := newCapture(ring, file, id, o, live)
	if o.summary != "" {
		// Only on request: this mode measures the capture engine. Seen on
		// an interface, "outbound" is what the interface sent.
		c.sum = newSummarizer()
	}
	rep.infof("Capturing on interface %s. Use ctrl-c to end at any time.", ifi.Name)
	c.start()
	rep.startCounter(c.packets.Load, c.bytes.Load)
	superviseIface(o, rep, sigc, file, c)
	return concludeIface(o, rep, stdout, file, c)
}

// superviseIface captures until a stop signal, a limit (-c, --duration,
// the last file of -G with -W) or a failure ends the capture. Neither a
// signal nor a limit is a failure: it is how this mode ends, as for
// tcpdump.
func superviseIface(o *options, rep *reporter, sigc <-chan os.Signal, file *captureFile, c *capture) {
	var deadline <-chan time.Time
	if o.duration > 0 {
		deadline = time.After(o.duration)
	}
	for c.failed() != nil {
		select {
		case s := <-sigc:
			if !infoSignal(s, c, file, rep) {
				c.stop()
			}
		case why := <-c.halts():
			rep.infof("%s: capture ended.", why)
			c.stop()
		case <-deadline:
			rep.infof("--duration %v passed: capture ended.", o.duration)
			c.stop()
		case err := <-c.failed():
			c.end(err)
		}
	}
}

// concludeIface completes and keeps the file of a capture that ended,
// prints the counters and writes the summary.
func concludeIface(o *options, rep *reporter, stdout io.Writer, file *captureFile, c *capture) (int, error) {
	capErr := c.stop()
	rep.stopCounter()
	stats, st, serr := c.endStats()
	if c.sum != nil {
		c.sum.finish()
	}
	err := file.finish(capErr, c.sum, stats)
	if kerr := file.keep(); err == nil {
		err = kerr
	}
	// Like tcpdump, and always (even with -q): the counters are the point.
	fmt.Fprintf(rep.w, "%s captured\n%s received by filter\n%s dropped by kernel\n",
		plural(c.packets.Load(), "packet", "packets"), plural(st.Packets, "packet", "packets"),
		plural(st.Drops, "packet", "packets"))
	if serr != nil {
		return exitFailure, fmt.Errorf("read kernel counters: %w", serr)
	}
	switch {
	case err == nil || errors.Is(err, unix.EPIPE):
	case c.broke:
		return exitFailure, fmt.Errorf("capture to %s failed: %w", file.name(), err)
	default:
		return exitFailure, fmt.Errorf("complete %s: %w", file.name(), err)
	}
	if c.sum == nil {
		return 0, nil
	}
	if _, err := c.sum.report(o, rep, stdout, file.owner, summary.Meta{
		Command: []string{}, Started: c.started, Ended: time.Now(),
		Packets: c.packets.Load(), Dropped: st.Drops,
	}, nil); err != nil {
		return exitFailure, err
	}
	return 0, nil
}
