// Package rtnl builds the traced program's link to the host over rtnetlink
// (jsimonetti/rtnetlink/v2), without the ip(8) binary: a veth pair whose peer
// is created directly inside the program's network namespace, the addresses
// (IPv4 on a /31 point-to-point link, the host end being the gateway; an
// IPv6 ULA /64 when the host has an IPv6 default route), loopback up and a
// default route inside.
//
// Reserve picks interface names and a subnet that are unique on the host,
// checked against every address and route, under a host-wide flock(2) on
// /run/nsntrace-state/lock. The lock is released by the caller once the veth
// carries its addresses, or by the kernel when the process dies. The subnet
// is also claimed, by binding an abstract unix socket named after it in the
// host's network namespace, which the kernel gives to one socket only: two
// concurrent runs never hold one subnet even when an address dump misses
// the other's addresses. The claim lasts until Link.Close, or until the
// process dies.
//
// Crash safety: the veth pair lives as long as the program's network
// namespace. When the last process of that namespace dies, the kernel
// destroys the peer and with it the host end, so nothing is left even
// after SIGKILL.
//
// # Privileges
//
// CAP_NET_ADMIN in the host's network namespace and in the program's.
//
// # Network namespaces
//
// Setup takes an fd of the program's network namespace; every rtnetlink
// socket for that namespace is opened with netlink.Config.NetNS, so no
// thread ever switches namespace.
package rtnl
