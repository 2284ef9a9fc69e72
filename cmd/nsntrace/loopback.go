package main

import (
	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
)

// The program's own loopback interface (lo in its network namespace) is
// captured beside its veth: what it says to itself (a local resolver, a
// sidecar, a database on 127.0.0.1) is part of what it does. In pcapng it
// is a second interface, "lo"; classic pcap has no interface ids, so there
// it is captured only when asked (--loopback), into the same file.

// checkLoopback refuses --loopback and --no-loopback together, and with
// --interface, which captures one interface only; and --no-processes with
// --interface, which has no program.
func (o *options) checkLoopback() error {
	switch {
	case o.loopback && o.noLoopback:
		return &usageError{"--loopback and --no-loopback exclude each other"}
	case (o.set["loopback"] || o.set["no-loopback"]) && o.set["interface"]:
		return &usageError{"--loopback and --no-loopback go with a traced program: --interface captures the one interface it names"}
	case o.set["no-processes"] && o.set["interface"]:
		return &usageError{"--no-processes goes with a traced program: --interface names no processes"}
	}
	return nil
}

// captureLoopback reports whether the program's lo is captured: in
// pcapng unless --no-loopback, in classic pcap only with --loopback.
func (o *options) captureLoopback() bool {
	if o.iface != "" || o.noLoopback {
		return false
	}
	if f, _ := outputFormat(o.output, o.format); f == pcapng.FormatPcap {
		return o.loopback
	}
	return true
}

// feedLoopback accounts a packet seen on the program's lo: a conversation
// of the program with itself, never one of its connections. Names are
// not learned from lo. It neither blocks nor allocates.
func (s *summarizer) feedLoopback(p *rawcap.Packet) {
	s.loop.Account(p.Data, p.Length, p.Timestamp)
}
