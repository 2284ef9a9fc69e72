//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/child"
	"github.com/nsntrace/nsntrace/internal/dnsrelay"
	"github.com/nsntrace/nsntrace/internal/summary"
	"github.com/nsntrace/nsntrace/nft"
	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
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
	file    *captureFile
	uplink  *net.Interface
	user    *child.User
	hostDNS dnsrelay.ResolvConf
	rep     *reporter
	stdout  io.Writer
	// eg is the egress policy (--allow, --allow-file) or the record for
	// --suggest-policy; nil for neither.
	eg *egress
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
	t := &tracer{o: o, argv: o.program, rep: rep}
	if o.policyOn() || o.suggestPolicy != "" {
		t.eg = newEgress(o)
	}
	if os.Geteuid() != 0 {
		return nil, failf(exitFailure, "must run as root: it creates a network namespace, a veth pair and firewall rules, and captures packets (try sudo)")
	}
	var err error
	if t.prog, t.file, err = prepareCapture(o); err != nil {
		return nil, err
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

// live reports whether packets must reach the file at once.
func (t *tracer) live() bool { return t.o.packetBuffered || t.file.stdout() }

// ringConfig is the capture ring of the run.
func (t *tracer) ringConfig() *rawcap.Config { return ringConfig(t.o, t.prog, t.live()) }

// run sets the session up, lets the program go, captures until it ends,
// completes the file and tears everything down. It returns the exit
// status and the error to report, if any.
func (t *tracer) run() (int, error) {
	// Catch the stop signals before anything exists, so that nothing is
	// left behind whenever they come. SIGPIPE: a write to a closed pipe
	// (-o - whose reader went away) returns EPIPE instead of killing us.
	sigc, release := catchSignals()
	defer release()

	// The published host ports first: one taken stops the run before
	// anything exists.
	pub, err := reservePorts(t.o.ports)
	if err != nil {
		return exitFailure, err
	}
	defer pub.Close()
	sweep(t.rep)
	s, err := startSession(t)
	if err != nil {
		return exitFailure, err
	}
	defer s.Close()
	pub.forward(s.plan.PeerAddr.Addr(), s.plan.PeerAddr6.Addr())

	// Everything is in place: only now the file is created.
	if err := t.file.create(shbComment(t.argv)); err != nil {
		return exitFailure, err
	}
	defer t.file.abort() // unless kept
	id, err := t.file.addInterface(pcapng.Interface{
		SnapLen:     uint32(t.o.snapLen),
		Name:        s.plan.HostIf,
		Description: fmt.Sprintf("traffic of %s, directions as the program saw them", quoteShort(t.argv)),
		Filter:      t.o.filter,
	})
	if err != nil {
		return exitFailure, err
	}
	c := newCapture(s.ring, t.file, id, t.o, t.live())
	c.programSide, c.sum, c.procs, c.eg = true, newSummarizer(), s.procs, t.eg
	if s.lo != nil {
		loID, err := t.file.addInterface(t.loopbackInterface())
		if err != nil {
			return exitFailure, err
		}
		c.addLoopback(s.lo, loID)
		c.sum.loop = summary.NewLoopback(nil)
	}
	if s.keys != nil {
		if c.keys, err = newKeyLog(s.keys); err != nil {
			return exitFailure, err
		}
	}

	// A stop signal during set-up: nothing has run yet; leave nothing.
	for len(sigc) > 0 {
		if sig := <-sigc; !isInfoSignal(sig) {
			return signalStatus(sig), fmt.Errorf("interrupted by %s before the program started", signalName(sig))
		}
	}

	t.announce(s, pub)
	if t.o.tlsKeys {
		t.rep.errorf("warning: %s will hold the keys of the program's TLS connections: whoever can read it can decrypt them", t.file.name())
	}
	c.start()
	t.rep.startCounter(c.packets.Load, c.bytes.Load)
	relErr := s.p.Release()
	if relErr != nil {
		// The child is gone before the program ran: still complete the
		// file, then report.
		t.rep.errorf("start %s: %v", t.argv[0], relErr)
		s.p.Kill()
	}
	res := t.supervise(s.p, c, sigc)
	// The veth outlives the program (we hold its namespace) until the
	// teardown: if it is gone or down now, someone took it away, and
	// what the program did after that is not in the trace.
	lost := !linkUp(s.link.HostIndex(), s.plan.HostIf)
	return t.conclude(s, c, res, relErr, lost)
}

// sweep removes what crashed runs (pid gone) left behind; concurrent
// runs are alive and keep theirs.
func sweep(rep *reporter) {
	done, err := nft.Sweep()
	for _, d := range done {
		rep.infof("Leftovers of crashed runs: %s.", d)
	}
	if err != nil {
		rep.errorf("warning: remove leftovers of crashed runs: %v", err)
	}
}

// announce says what is traced, where, and how to end it.
func (t *tracer) announce(s *session, pub *publisher) {
	t.rep.infof("Starting network trace of '%s' on interface %s.", shellQuote(t.argv), t.uplink.Name)
	addr := s.plan.PeerAddr.Addr().String()
	if s.plan.PeerAddr6.IsValid() {
		addr += " and " + s.plan.PeerAddr6.Addr().String()
	}
	t.rep.infof("Your IP address in this trace is %s.", addr)
	if d := pub.describe(); d != "" {
		t.rep.infof("%s", d)
	}
	if s.dnsNote != "" {
		t.rep.infof("%s", s.dnsNote)
	}
	t.rep.infof("Use ctrl-c to end at any time.")
}

// conclude drains the capture into the file once the program and all it
// started are gone, keeps the file if the program ran, says how it went,
// and writes the summary. It returns the exit status and the error to
// report.
func (t *tracer) conclude(s *session, c *capture, res waited, relErr error, lost bool) (int, error) {
	ran := relErr == nil && res.err == nil && res.st.ExecError == nil
	st, capErr := t.complete(s, c, ran)
	pipeGone := errors.Is(capErr, unix.EPIPE)
	counts := plural(c.packets.Load(), "packet", "packets") + " captured"
	if c.lo != nil {
		counts += fmt.Sprintf(" (%d on lo)", c.loPkts)
	}
	counts += fmt.Sprintf(", %s dropped by kernel", plural(st.Drops, "packet", "packets"))
	switch {
	case ran && capErr == nil:
		t.rep.infof("Finished capturing: %s, written to %s.", counts, t.file.written())
	case ran:
		// The count is what was captured, not what reached the file.
		t.rep.infof("Finished capturing: %s; %s is incomplete.", counts, t.file.name())
	}
	if lost {
		t.rep.errorf("warning: the trace's interface %s was removed or taken down while the program ran: the trace is incomplete", s.plan.HostIf)
	}
	if st.Drops > 0 && t.o.quiet {
		t.rep.errorf("warning: the kernel dropped %s: the trace is incomplete", plural(st.Drops, "packet", "packets"))
	}
	if n := res.st.Stopped; n > 0 {
		msg := fmt.Sprintf("%s ended; %s it left running got SIGTERM", t.argv[0], plural(uint64(n), "process", "processes"))
		if k := res.st.Killed; k > 0 {
			msg += fmt.Sprintf(", %d still there after %v got SIGKILL", k, gracePeriod)
		}
		t.rep.infof("%s (--wait-all traces until the last one is gone).", msg)
	}

	code := res.st.ExitCode()
	switch {
	case res.err != nil:
		return exitFailure, fmt.Errorf("the program's init: %w", res.err)
	case res.st.ExecError != nil:
		return code, fmt.Errorf("%s: %v", t.argv[0], execErrorText(res.st.ExecError))
	case capErr != nil && !pipeGone, relErr != nil:
		code = exitFailure
	case res.signal != nil:
		// Ended because nsntrace was told to: its status says so, as a
		// process killed by that signal would, whatever the program's.
		if code != signalStatus(res.signal) {
			t.rep.infof("%s ended with status %d.", t.argv[0], code)
		}
		code = signalStatus(res.signal)
	}
	if c.procs != nil {
		if err := c.procs.failure(); err != nil {
			t.rep.errorf("warning: look up the processes behind connections: %v", err)
		}
	}
	if code == 0 && t.eg != nil {
		if n := len(t.eg.violations()); n > 0 {
			t.rep.errorf("%s exited 0 but broke the egress policy (%s): exit status %d", t.argv[0], plural(uint64(n), "violation", "violations"), exitViolation)
			code = exitViolation
		}
	}
	r, err := c.sum.report(t.o, t.rep, t.stdout, t.file.owner, summary.Meta{
		Command: t.argv, ExitStatus: code, Started: c.started, Ended: time.Now(),
		Packets: c.packets.Load(), Dropped: st.Drops, Processes: c.procs != nil,
	}, t.eg)
	if err != nil {
		return exitFailure, err
	}
	if t.o.suggestPolicy != "" {
		if err := t.eg.suggest(t.o.suggestPolicy, r, s.plan.HostAddr.Addr(), t.file.owner); err != nil {
			return exitFailure, err
		}
		t.rep.infof("Rules that allow what this run did: %s.", t.o.suggestPolicy)
	}
	return code, nil
}

// complete stops the capture once it has drained the ring, completes the
// file and keeps it if the program ran (otherwise the run's deferred
// abort removes it, and an older file stays). It reports a failure and
// returns the kernel's counters and the first error.
func (t *tracer) complete(s *session, c *capture, ran bool) (rawcap.Stats, error) {
	capErr := c.stop()
	t.rep.stopCounter()
	stats, st, serr := c.endStats()
	if serr != nil {
		t.rep.errorf("warning: read kernel counters: %v", serr)
	}
	c.sum.finish()
	err := t.file.finish(capErr, c.sum, stats)
	if ran {
		if kerr := t.file.keep(); err == nil {
			err = kerr
		}
	}
	switch {
	case err == nil || errors.Is(err, unix.EPIPE):
	case c.broke:
		t.rep.errorf("capture to %s failed: %v", t.file.name(), err)
	default:
		t.rep.errorf("complete %s: %v", t.file.name(), err)
	}
	return st, err
}

func joinAddrPorts(as []netip.AddrPort) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.Addr().String()
	}
	return strings.Join(s, ", ")
}

// linkUp reports whether the interface with index and name is still
// there, by the same index and name, and up.
func linkUp(index int, name string) bool {
	now, err := net.InterfaceByIndex(index)
	return err == nil && now.Name == name && now.Flags&net.FlagUp != 0
}
