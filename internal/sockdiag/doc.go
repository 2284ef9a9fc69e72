// Package sockdiag finds the socket behind a connection: given a protocol
// and the two ends as the traced program sees them, it asks the kernel's
// NETLINK_SOCK_DIAG (sock_diag(7)) for the one socket that would own the
// connection and returns its inode, the number that /proc/PID/fd/N links
// show as "socket:[N]".
//
// The request is exact (SOCK_DIAG_BY_FAMILY without NLM_F_DUMP), so the
// kernel runs the same lookup it runs for an arriving packet, with no dump
// of the namespace's socket tables:
//
//   - TCP (net/ipv4/inet_diag.c, inet_diag_find_one_icsk): the established
//     table first, then the listeners; an inbound SYN therefore finds the
//     listening socket. A request or TIME_WAIT socket has no inode (0):
//     Lookup reports it as not found.
//   - UDP (net/ipv4/udp_diag.c, udp_dump_one): __udp4_lib_lookup or
//     __udp6_lib_lookup with the request's source as the datagram's
//     source ("src and dst are swapped for historical reasons"), which
//     scores connected and unconnected sockets alike: an unconnected
//     socket bound to the local port is found too, so no dump is needed.
//
// The pure part (the request and reply layouts, in layout.go) has no
// build tags; the socket is Linux's.
//
// # Privileges
//
// Any user may open the socket and look up sockets; the inode of another
// user's socket is reported too. Mapping an inode to a process needs
// access to that process's /proc/PID/fd, which is not this package's job.
//
// # Network namespaces
//
// The kernel looks in the network namespace of the netlink socket. Open
// takes a namespace file descriptor and creates the socket inside it
// (netlink.Config.NetNS), with no thread of the caller's switched.
package sockdiag
