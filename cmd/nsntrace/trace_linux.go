//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/child"
	"github.com/nsntrace/nsntrace/internal/dnsrelay"
	"github.com/nsntrace/nsntrace/internal/summary"
	"github.com/nsntrace/nsntrace/nft"
	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
	"github.com/nsntrace/nsntrace/rawcap/filter"
	"github.com/nsntrace/nsntrace/rtnl"
)

// gracePeriod is how long the program, or what it left running when it
// ended, has after SIGTERM before it gets SIGKILL.
const gracePeriod = child.DefaultGrace

// liveBlockTimeout is the ring's block retire timeout when packets must
// reach the reader at once (-U, -o -); otherwise rawcap's default.
const liveBlockTimeout = 10 * time.Millisecond

// tracer is one run, checked and ready to start.
type tracer struct {
	o       *options
	argv    []string // the program's argv
	path    string   // absolute path of the program
	prog    []bpf.RawInstruction
	format  pcapng.Format
	out     *output
	uplink  *net.Interface
	user    *child.User
	hostDNS dnsrelay.ResolvConf
	rep     *reporter
	stdout  io.Writer
}

// trace runs the program under capture and returns the exit status.
func trace(o *options, stdout, stderr io.Writer) int {
	rep := newReporter(stderr, o.quiet)
	t, err := prepare(o, rep)
	if err != nil {
		rep.errorf("%v", err)
		return exitCodeOf(err)
	}
	t.stdout = stdout
	code, err := t.run()
	if err != nil {
		rep.errorf("%v", err)
	}
	return code
}

// prepare checks everything that can be checked before anything is
// created: privileges, filter, output, uplink, user, program.
func prepare(o *options, rep *reporter) (*tracer, error) {
	t := &tracer{o: o, argv: o.program, rep: rep, out: &output{path: o.output}}
	if os.Geteuid() != 0 {
		return nil, failf(exitFailure, "must run as root: it creates a network namespace, a veth pair and firewall rules, and captures packets (try sudo)")
	}
	var err error
	if t.prog, err = filter.Compile(o.filter, uint32(o.snapLen)); err != nil {
		return nil, failf(exitFailure, "%s", filterError(err))
	}
	t.format, _ = outputFormat(o.output, o.format) // checked by parse
	if err := t.out.check(); err != nil {
		return nil, failf(exitFailure, "%v", err)
	}
	if t.uplink, err = rtnl.Uplink(o.device); err != nil {
		if o.device == "" {
			return nil, failf(exitFailure, "find the uplink: %v (name it with -d DEV)", err)
		}
		if errors.Is(err, rtnl.ErrNotUplink) {
			return nil, failf(exitFailure, "-d %s: %v: name the device that leads out of the host, or leave -d out to use the default route's", o.device, err)
		}
		return nil, failf(exitFailure, "uplink %s: %v", o.device, err)
	}
	if o.user != "" {
		if t.user, err = child.LookupUser(o.user); err != nil {
			return nil, failf(exitFailure, "-u %s: %v", o.user, err)
		}
	}
	if t.path, err = lookProgram(o.program[0]); err != nil {
		return nil, err
	}
	if !o.publicDNS {
		// A missing resolv.conf means the C library's default, a server
		// on loopback: the relay covers that too.
		b, err := os.ReadFile("/etc/resolv.conf")
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, failf(exitFailure, "read the host's resolver configuration: %v", err)
		}
		t.hostDNS = dnsrelay.ParseResolvConf(b)
	}
	if o.publicDNS && !hasResolvConf() {
		return nil, failf(exitFailure, "--use-public-dns covers /etc/resolv.conf, and this host has none (create an empty one)")
	}
	return t, nil
}

// hasResolvConf reports whether the host has an /etc/resolv.conf (a
// dangling link counts) that the program's own can cover. A minimal image
// may have none, and making one would write to the host's /etc.
func hasResolvConf() bool {
	_, err := os.Lstat("/etc/resolv.conf")
	return !errors.Is(err, fs.ErrNotExist)
}

// undo collects teardown steps, run in reverse.
type undo []func()

func (u *undo) add(f func()) { *u = append(*u, f) }
func (u *undo) run() {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
	*u = nil
}

// run sets everything up, lets the program go, captures until it ends,
// completes the file and tears everything down. It returns the exit
// status and the error to report, if any.
func (t *tracer) run() (code int, err error) {
	rep, o := t.rep, t.o
	var td undo
	defer td.run()

	// Catch the stop signals before anything exists, so that nothing is
	// left behind whenever they come. SIGPIPE: a write to a closed pipe
	// (-o - whose reader went away) returns EPIPE instead of killing us.
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGPIPE)
	defer signal.Stop(sigc)

	// Leftovers of crashed runs (pid gone) only: concurrent runs are alive.
	done, err := nft.Sweep()
	for _, d := range done {
		rep.infof("Leftovers of crashed runs: %s.", d)
	}
	if err != nil {
		rep.errorf("warning: remove leftovers of crashed runs: %v", err)
	}

	plan, unlock, err := rtnl.Reserve(nil)
	if err != nil {
		return exitFailure, fmt.Errorf("reserve addresses for the trace: %w", err)
	}
	unlocked := false
	defer func() {
		if !unlocked {
			unlock()
		}
	}()

	ccfg := &child.Config{
		Path:    t.path,
		Args:    t.argv,
		Env:     os.Environ(),
		User:    t.user,
		WaitAll: o.waitAll,
		Grace:   gracePeriod,
	}
	if t.out.stdout() {
		// Standard output carries the capture; the program's goes to stderr.
		ccfg.Stdout = os.Stderr
	}
	var dnsNote string
	relayTo := []netip.AddrPort(nil)
	gw := plan.HostAddr.Addr()
	switch {
	case o.publicDNS:
		ccfg.ResolvConf = dnsrelay.ChildResolvConf(t.hostDNS, "public resolvers (--use-public-dns)", dnsrelay.PublicResolvers...)
		dnsNote = "DNS: public resolvers (--use-public-dns)."
	case !hasResolvConf():
		dnsNote = "DNS: the host has no /etc/resolv.conf, so the program has none either."
	case t.hostDNS.NeedsRelay():
		relayTo = t.hostDNS.Upstreams()
		ccfg.ResolvConf = dnsrelay.ChildResolvConf(t.hostDNS,
			fmt.Sprintf("nsntrace relays DNS from the gateway to the host's resolvers (%s)", joinAddrPorts(relayTo)), gw)
		dnsNote = fmt.Sprintf("DNS: relayed from %s to the host's resolver %s.", gw, joinAddrPorts(relayTo))
	}

	// The kernel zeroes a large ring as it allocates it, the slowest step
	// of a start: do it while the child and its veth are being made, and
	// bind it to the veth once that exists.
	rcfg := &rawcap.Config{SnapLen: o.snapLen, Filter: t.prog}
	buffered := o.packetBuffered || t.out.stdout()
	if buffered {
		rcfg.BlockTimeout = liveBlockTimeout
	}
	type newRing struct {
		r   *rawcap.Ring
		err error
	}
	ringc := make(chan newRing, 1)
	go func() {
		r, err := rawcap.New(rcfg)
		ringc <- newRing{r, err}
	}()
	ringTaken := false
	defer func() {
		if !ringTaken { // an early return: collect and close it
			if nr := <-ringc; nr.r != nil {
				nr.r.Close()
			}
		}
	}()

	p, err := child.Start(ccfg)
	if err != nil {
		return exitFailure, fmt.Errorf("start the program's namespaces: %w", err)
	}
	released := false
	td.add(func() {
		if !released {
			p.Close() // kills the held-back child; its namespace goes with it
		}
	})
	netns, err := p.NetNS()
	if err != nil {
		return exitFailure, fmt.Errorf("open the program's network namespace: %w", err)
	}
	link, err := rtnl.Setup(plan, int(netns.Fd())) // netns is p's: p.Close closes it
	if err != nil {
		return exitFailure, fmt.Errorf("connect the program's namespace: %w", err)
	}
	td.add(func() {
		if err := link.Close(); err != nil {
			rep.errorf("warning: remove veth %s: %v", plan.HostIf, err)
		}
	})
	unlock()
	unlocked = true

	table, err := nft.Install(nft.Spec{
		Table:   fmt.Sprintf("nsntrace-%d", os.Getpid()),
		Subnet:  plan.HostAddr.Masked(),
		Subnet6: plan.HostAddr6.Masked(),
		Uplink:  t.uplink.Name,
		Veth:    plan.HostIf,
	})
	if err != nil {
		return exitFailure, fmt.Errorf("install NAT and forwarding rules: %w", err)
	}
	td.add(func() {
		if err := table.Close(); err != nil {
			rep.errorf("warning: remove firewall table: %v", err)
		}
	})

	if relayTo != nil {
		// Only the program, over its own veth: the gateway address is
		// reachable from the uplink and from other traces too.
		relay, err := dnsrelay.Listen(netip.AddrPortFrom(gw, dnsrelay.DefaultPort), &dnsrelay.Config{
			Upstreams: relayTo,
			Interface: plan.HostIf,
			Client:    plan.PeerAddr.Addr(),
		})
		if err != nil {
			return exitFailure, err
		}
		td.add(func() { relay.Close() }) // its sockets only; nothing to report
	}

	hostIf, err := net.InterfaceByName(plan.HostIf)
	if err != nil {
		return exitFailure, fmt.Errorf("find veth %s: %w", plan.HostIf, err)
	}
	nr := <-ringc
	ringTaken = true
	if nr.err != nil {
		return exitFailure, fmt.Errorf("open capture on %s: %w", plan.HostIf, nr.err)
	}
	ring := nr.r
	td.add(func() { ring.Close() }) // after Stats; a close error loses nothing
	if err := ring.Bind(hostIf.Index); err != nil {
		return exitFailure, fmt.Errorf("open capture on %s: %w", plan.HostIf, err)
	}

	// Everything is in place: only now the output is created.
	if err := t.out.create(); err != nil {
		return exitFailure, err
	}
	outOK := false
	defer func() {
		if !outOK {
			t.out.abort()
		}
	}()
	w, err := pcapng.NewWriter(t.out.f, &pcapng.Config{
		Format:   t.format,
		Hardware: machine(),
		OS:       osName(),
		UserAppl: "nsntrace " + version,
		Comments: []string{shbComment(t.argv)},
	})
	if err != nil {
		return exitFailure, fmt.Errorf("write %s: %w", t.out.name(), err)
	}
	ifid, err := w.AddInterface(pcapng.Interface{
		LinkType:    pcapng.LinkTypeEthernet,
		SnapLen:     uint32(o.snapLen),
		Name:        plan.HostIf,
		Description: fmt.Sprintf("traffic of %s, directions as the program saw them", quoteShort(t.argv)),
		Filter:      o.filter,
		OS:          osName(),
	})
	if err != nil {
		return exitFailure, fmt.Errorf("write %s: %w", t.out.name(), err)
	}
	c := &capture{ring: ring, w: w, iface: ifid, flush: buffered, programSide: true, sum: newSummarizer()}

	// A stop signal during set-up: nothing has run yet; leave nothing.
	select {
	case s := <-sigc:
		if s != unix.SIGPIPE {
			return 128 + int(s.(syscall.Signal)), fmt.Errorf("interrupted by %v before the program started", s)
		}
	default:
	}

	rep.infof("Starting network trace of '%s' on interface %s.", shellQuote(t.argv), t.uplink.Name)
	addr := plan.PeerAddr.Addr().String()
	if plan.PeerAddr6.IsValid() {
		addr += " and " + plan.PeerAddr6.Addr().String()
	}
	rep.infof("Your IP address in this trace is %s.", addr)
	if dnsNote != "" {
		rep.infof("%s", dnsNote)
	}
	rep.infof("Use ctrl-c to end at any time.")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	capErr := make(chan error, 1)
	go func() { capErr <- c.run(ctx) }()
	rep.startCounter(c.packets.Load, c.bytes.Load)

	released = true
	td.add(func() { p.Close() }) // after Wait: frees the child's resources
	relErr := p.Release()
	if relErr != nil {
		// The child is gone before the program ran: still complete the
		// file below, then report.
		rep.errorf("start %s: %v", t.argv[0], relErr)
		p.Kill()
	}

	type waited struct {
		st  child.Status
		err error
	}
	waitc := make(chan waited, 1)
	go func() {
		st, err := p.Wait()
		waitc <- waited{st, err}
	}()

	var (
		res       *waited
		grace     <-chan time.Time
		stopping  bool
		captureEr error
		capDone   bool
	)
	stop := func(why string) {
		if !stopping {
			stopping = true
			rep.infof("%s: stopping %s (SIGTERM; ctrl-c again to kill it at once).", why, t.argv[0])
			p.Signal(unix.SIGTERM) // fails only once the program is gone
			grace = time.After(gracePeriod)
			return
		}
		rep.infof("%s: killing %s.", why, t.argv[0])
		p.Kill()
	}
	for res == nil {
		select {
		case r := <-waitc:
			res = &r
		case s := <-sigc:
			if s == unix.SIGPIPE {
				continue // the write that caused it returns EPIPE: see capErr
			}
			stop(s.String())
		case <-grace:
			grace = nil
			rep.infof("%s did not end within %v: killing it.", t.argv[0], gracePeriod)
			p.Kill()
		case err := <-capErr:
			capDone = true
			capErr = nil
			captureEr = err
			if errors.Is(err, unix.EPIPE) {
				stop("the reader of standard output went away")
			} else {
				rep.errorf("capture failed: %v", err)
				stop("capture failed")
			}
		}
	}

	// The veth outlives the program (we hold its namespace) until the
	// teardown: if it is gone or down now, someone took it away, and
	// what the program did after that is not in the trace.
	lost := !linkUp(hostIf)

	// The program and everything it started are gone: drain the ring.
	cancel()
	if !capDone {
		captureEr = <-capErr
	}
	rep.stopCounter()
	st, serr := ring.Stats()
	if serr != nil {
		rep.errorf("warning: read kernel counters: %v", serr)
	}
	c.sum.finish()
	if captureEr == nil {
		captureEr = c.sum.addNames(w)
	}
	if captureEr == nil {
		err := w.WriteStats(ifid, isbStats(start, st, serr, o.filter != ""))
		if err == nil {
			err = w.Close()
		}
		captureEr = err
	} else {
		w.Close() // the first error is what matters, and it is reported
	}
	if relErr == nil && res.err == nil && res.st.ExecError == nil {
		// The program ran: its trace stays, whatever happened. Otherwise
		// the deferred abort removes it (and an older file stays).
		outOK = true
		if err := t.out.close(); err != nil && captureEr == nil {
			captureEr = err
		}
	}
	pipeGone := errors.Is(captureEr, unix.EPIPE)
	if captureEr != nil && !pipeGone && capDone {
		rep.errorf("capture to %s failed: %v", t.out.name(), captureEr)
	} else if captureEr != nil && !pipeGone {
		rep.errorf("complete %s: %v", t.out.name(), captureEr)
	}

	switch {
	case outOK && captureEr == nil:
		rep.infof("Finished capturing: %s captured, %s dropped by kernel, written to %s.",
			plural(c.packets.Load(), "packet", "packets"), plural(st.Drops, "packet", "packets"), t.out.name())
	case outOK:
		// The count is what was captured, not what reached the file.
		rep.infof("Finished capturing: %s captured, %s dropped by kernel; %s is incomplete.",
			plural(c.packets.Load(), "packet", "packets"), plural(st.Drops, "packet", "packets"), t.out.name())
	}
	if lost {
		rep.errorf("warning: the trace's interface %s was removed or taken down while the program ran: the trace is incomplete", plan.HostIf)
	}
	if st.Drops > 0 && o.quiet {
		rep.errorf("warning: the kernel dropped %s: the trace is incomplete", plural(st.Drops, "packet", "packets"))
	}

	if n := res.st.Stopped; n > 0 {
		msg := fmt.Sprintf("%s ended; %s it left running got SIGTERM", t.argv[0], plural(uint64(n), "process", "processes"))
		if k := res.st.Killed; k > 0 {
			msg += fmt.Sprintf(", %d still there after %v got SIGKILL", k, gracePeriod)
		}
		rep.infof("%s (--wait-all traces until the last one is gone).", msg)
	}

	code, err = res.st.ExitCode(), nil
	switch {
	case res.err != nil:
		return exitFailure, fmt.Errorf("the program's init: %w", res.err)
	case res.st.ExecError != nil:
		return res.st.ExitCode(), fmt.Errorf("%s: %v", t.argv[0], execErrorText(res.st.ExecError))
	case captureEr != nil && !pipeGone:
		code = exitFailure
	case relErr != nil:
		code = exitFailure
	}
	if serr := c.sum.report(t.o, t.rep, t.stdout, summary.Meta{
		Command: t.argv, ExitStatus: code, Started: start, Ended: time.Now(),
		Packets: c.packets.Load(), Dropped: st.Drops,
	}); serr != nil {
		return exitFailure, serr
	}
	return code, nil
}

func joinAddrPorts(as []netip.AddrPort) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.Addr().String()
	}
	return strings.Join(s, ", ")
}

// linkUp reports whether the interface is still there, by the same index
// and name, and up.
func linkUp(ifi *net.Interface) bool {
	now, err := net.InterfaceByIndex(ifi.Index)
	return err == nil && now.Name == ifi.Name && now.Flags&net.FlagUp != 0
}
