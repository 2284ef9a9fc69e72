package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/nsntrace/nsntrace/rawcap"
)

// ringFloor is table 6's lower bound of any capture: nsntrace's own ring
// (rawcap, its default size, block and snap length) on the plain path's
// veth, every packet walked and then dropped, nothing formatted or
// written. What a row costs beyond it is the capture tool's work; what it
// costs itself is the kernel's (a clone and a copy into the ring per
// packet) and the reading of blocks.
//
// It runs as a process of its own (nsntrace-bench -ring-floor IFACE) in
// the namespace of the interface, on one P as nsntrace does (oneP in
// cmd/nsntrace), and ends on SIGINT, printing its counts as tcpdump does.
func ringFloor(iface string) error {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	r, err := rawcap.Open(ifi.Index, &rawcap.Config{})
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var n, bytes uint64
	err = r.Run(ctx, func(p *rawcap.Packet) error {
		n++
		bytes += uint64(len(p.Data))
		return nil
	})
	if err != nil && ctx.Err() == nil {
		return err
	}
	st, err := r.Stats()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d packets captured\n%d packets dropped by kernel\n%d bytes walked\n", n, st.Drops, bytes)
	return nil
}
