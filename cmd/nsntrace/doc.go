// Command nsntrace traces the network traffic of one program: it runs the
// program in network, mount and PID namespaces of its own, joined to the
// host by a veth pair with NAT, and records every packet of that namespace
// into a pcapng (or pcap) file.
//
//	nsntrace [flags] PROGRAM [ARGS...]
//
// The pipeline of one run, in order: check everything that can be checked
// (root, filter, output, uplink, user, program); sweep leftovers of crashed
// runs; start the child (package child), held back before exec; reserve a
// subnet and create the veth with the peer directly in the child's
// namespace (package rtnl); install the run's nft table (package nft);
// relay DNS if the host's resolver is on loopback (internal/dnsrelay);
// open the capture ring on the host end of the veth with the compiled
// filter (packages rawcap, rawcap/filter); create the output and write
// the file headers (package pcapng); release the program; capture until it
// has ended and what it left running was stopped (with --wait-all: until
// everything it started has ended), or a signal stops them; drain
// the ring, write the statistics block, close the file; tear down; exit
// with the program's status.
//
// Utilities are flags, never subcommands, so that no program name is
// taken: --compile-filter, --cleanup, --version, --interface (the capture
// engine alone, for make bench). The man page and the shell completions
// come from a separate build of this command, `go run -tags gendocs
// ./cmd/nsntrace --gen-docs DIR` (make docs), so that their generator is
// not in the shipped binary.
//
// # Privileges
//
// Tracing needs root (CAP_SYS_ADMIN for the namespaces, CAP_NET_ADMIN for
// links, routes and nftables, CAP_NET_RAW for the capture).
package main
