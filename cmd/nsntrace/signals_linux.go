//go:build linux

package main

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// stopSignals end a trace as ctrl-c does: the program gets SIGTERM and
// the grace period, the ring is drained, the file completed, everything
// removed, and nsntrace exits 128+N. Besides the usual three, what
// supervisors and people send: QUIT (ctrl-\), ABRT (watchdogs), and the
// fault signals when another process sends them with kill(2) or
// tgkill(2). Go's runtime delivers those to us only then (si_code SI_USER
// or SI_TKILL, runtime.sigFromUser); raised by a real fault of nsntrace,
// or queued with sigqueue(3) (SI_QUEUE, which the runtime cannot tell
// from a fault), they crash it as the bug they are.
var stopSignals = []os.Signal{
	unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGABRT,
	unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP, unix.SIGSYS,
}

// Signals that do not stop a trace: SIGUSR1 prints the counters, SIGUSR2
// flushes the file (tcpdump's conveniences), and SIGPIPE, from a write to
// standard output whose reader went away, only makes that write return
// EPIPE.
var infoSignals = []os.Signal{unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE}

// catchSignals starts delivering the stop and info signals on the
// returned channel, until the returned function is called.
func catchSignals() (<-chan os.Signal, func()) {
	c := make(chan os.Signal, 16)
	signal.Notify(c, append(stopSignals[:len(stopSignals):len(stopSignals)], infoSignals...)...)
	return c, func() { signal.Stop(c) }
}

// isInfoSignal reports whether s is one of infoSignals.
func isInfoSignal(s os.Signal) bool {
	for _, i := range infoSignals {
		if s == i {
			return true
		}
	}
	return false
}

// signalName is how messages name a signal: SIGQUIT.
func signalName(s os.Signal) string {
	if sig, ok := s.(unix.Signal); ok {
		if n := unix.SignalName(sig); n != "" {
			return n
		}
	}
	return s.String()
}

// signalStatus is the exit status of a process that ended by signal s.
func signalStatus(s os.Signal) int {
	if sig, ok := s.(unix.Signal); ok {
		return 128 + int(sig)
	}
	return exitFailure
}

// infoSignal handles SIGUSR1 (print the counters) and SIGUSR2 (flush the
// file) for a running capture c into file; it reports whether s was one
// of them. SIGPIPE counts as handled: the write that caused it returns
// EPIPE, which the capture reports.
func infoSignal(s os.Signal, c *capture, file *captureFile, rep *reporter) bool {
	switch s {
	case unix.SIGUSR1:
		c.ask(nil) // publishes the counters
		st, err := c.kernelStats()
		drops := "unknown"
		if err == nil {
			drops = plural(st.Drops, "packet", "packets")
		}
		rep.printf("%s captured (%s), %s dropped by kernel, writing %s.",
			plural(c.packets.Load(), "packet", "packets"), formatBytes(c.bytes.Load()), drops, file.name())
	case unix.SIGUSR2:
		// c.w is read on the capture goroutine: rotation changes it.
		if err := c.ask(func() error { return c.w.Flush() }); err != nil {
			rep.errorf("flush %s: %v", file.name(), err)
		}
	case unix.SIGPIPE:
	default:
		return false
	}
	return true
}
