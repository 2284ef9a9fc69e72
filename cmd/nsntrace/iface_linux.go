//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
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
	c := &capture{ring: ring, w: file.w, iface: id, flush: live}
	if o.summary != "" {
		// Only on request: this mode measures the capture engine. Seen on
		// an interface, "outbound" is what the interface sent.
		c.sum = newSummarizer()
	}
	rep.infof("Capturing on interface %s. Use ctrl-c to end at any time.", ifi.Name)
	c.start()
	rep.startCounter(c.packets.Load, c.bytes.Load)
	for c.failed() != nil {
		select {
		case s := <-sigc:
			// A stop signal is how this mode ends, as for tcpdump: not
			// a failure.
			if !infoSignal(s, c, file, rep) {
				c.stop()
			}
		case err := <-c.failed():
			c.end(err)
		}
	}
	return concludeIface(o, rep, stdout, file, c)
}

// concludeIface completes and keeps the file of a capture that ended,
// prints the counters and writes the summary.
func concludeIface(o *options, rep *reporter, stdout io.Writer, file *captureFile, c *capture) (int, error) {
	capErr := c.stop()
	rep.stopCounter()
	st, serr := c.ring.Stats()
	if c.sum != nil {
		c.sum.finish()
	}
	err := file.finish(capErr, c.sum, c.iface, isbStats(c.started, st, serr, o.filter != ""))
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
	if err := c.sum.report(o, rep, stdout, summary.Meta{
		Command: []string{}, Started: c.started, Ended: time.Now(),
		Packets: c.packets.Load(), Dropped: st.Drops,
	}); err != nil {
		return exitFailure, err
	}
	return 0, nil
}
