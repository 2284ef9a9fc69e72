//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/summary"
	"github.com/nsntrace/nsntrace/nft"
	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
	"github.com/nsntrace/nsntrace/rawcap/filter"
)

// captureInterface captures an existing interface with the same ring and
// writer a trace uses, until SIGINT or SIGTERM: the capture engine alone,
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
	prog, err := filter.Compile(o.filter, uint32(o.snapLen))
	if err != nil {
		return exitFailure, errors.New(filterError(err))
	}
	format, _ := outputFormat(o.output, o.format) // checked by parse
	out := &output{path: o.output}
	if err := out.check(); err != nil {
		return exitFailure, err
	}
	ifi, err := net.InterfaceByName(o.iface)
	if err != nil {
		return exitFailure, fmt.Errorf("interface %s: %w", o.iface, err)
	}
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGPIPE)
	defer signal.Stop(sigc)

	rcfg := &rawcap.Config{SnapLen: o.snapLen, Filter: prog}
	buffered := o.packetBuffered || out.stdout()
	if buffered {
		rcfg.BlockTimeout = liveBlockTimeout
	}
	ring, err := rawcap.Open(ifi.Index, rcfg)
	if err != nil {
		return exitFailure, fmt.Errorf("open capture on %s: %w", ifi.Name, err)
	}
	defer ring.Close()
	if err := out.create(); err != nil {
		return exitFailure, err
	}
	w, err := pcapng.NewWriter(out.f, &pcapng.Config{
		Format: format, Hardware: machine(), OS: osName(), UserAppl: "nsntrace " + version,
		Comments: []string{fmt.Sprintf("nsntrace %s captured interface %s", version, ifi.Name)},
	})
	if err != nil {
		out.abort()
		return exitFailure, fmt.Errorf("write %s: %w", out.name(), err)
	}
	id, err := w.AddInterface(pcapng.Interface{
		LinkType: pcapng.LinkTypeEthernet, SnapLen: uint32(o.snapLen),
		Name: ifi.Name, Filter: o.filter, OS: osName(),
	})
	if err != nil {
		out.abort()
		return exitFailure, fmt.Errorf("write %s: %w", out.name(), err)
	}
	c := &capture{ring: ring, w: w, iface: id, flush: buffered}
	if o.summary != "" {
		// Only on request: this mode measures the capture engine. Seen on
		// an interface, "outbound" is what the interface sent.
		c.sum = newSummarizer()
	}
	rep.infof("Capturing on interface %s. Use ctrl-c to end at any time.", ifi.Name)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	capErr := make(chan error, 1)
	go func() { capErr <- c.run(ctx) }()
	rep.startCounter(c.packets.Load, c.bytes.Load)
	var cerr error
	for done := false; !done; {
		select {
		case s := <-sigc:
			if s == unix.SIGPIPE {
				continue
			}
			cancel()
			cerr = <-capErr
			done = true
		case cerr = <-capErr:
			done = true
		}
	}
	rep.stopCounter()
	st, serr := ring.Stats()
	if c.sum != nil {
		c.sum.finish()
		if cerr == nil {
			cerr = c.sum.addNames(w)
		}
	}
	if cerr == nil {
		cerr = w.WriteStats(id, isbStats(start, st, serr, o.filter != ""))
	}
	if err := w.Close(); cerr == nil {
		cerr = err
	}
	if err := out.close(); cerr == nil {
		cerr = err
	}
	// Like tcpdump, and always (even with -q): the counters are the point.
	fmt.Fprintf(rep.w, "%s captured\n%s received by filter\n%s dropped by kernel\n",
		plural(c.packets.Load(), "packet", "packets"), plural(st.Packets, "packet", "packets"),
		plural(st.Drops, "packet", "packets"))
	if serr != nil {
		return exitFailure, fmt.Errorf("read kernel counters: %w", serr)
	}
	if cerr != nil && !errors.Is(cerr, unix.EPIPE) {
		return exitFailure, fmt.Errorf("capture to %s: %w", out.name(), cerr)
	}
	if c.sum != nil {
		if err := c.sum.report(o, rep, stdout, summary.Meta{
			Command: []string{}, Started: start, Ended: time.Now(),
			Packets: c.packets.Load(), Dropped: st.Drops,
		}); err != nil {
			return exitFailure, err
		}
	}
	return 0, nil
}

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
