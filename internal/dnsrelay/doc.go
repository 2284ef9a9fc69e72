// Package dnsrelay gives a traced program working DNS when the host's
// resolver is on loopback.
//
// A host running systemd-resolved (or dnsmasq, unbound, ...) lists
// 127.0.0.53 or ::1 in /etc/resolv.conf. Inside the traced program's own
// network namespace that address is the namespace's own, empty loopback, so
// every lookup would fail. nsntrace therefore gives the namespace a private
// resolv.conf naming the veth gateway, and runs a Relay on the gateway that
// forwards queries (UDP and TCP) to the host's resolvers. The queries and
// answers cross the veth, so they are in the trace, as the program sent them.
//
// The resolv.conf(5) handling (ParseResolvConf, NeedsRelay, ChildResolvConf)
// is pure and has no build tags; the Relay uses the standard library's
// sockets in the caller's current network namespace.
//
// # Who is served
//
// The gateway address is an address of the host: the uplink and other
// traces can reach it too, and a relay into a loopback-only resolver would
// be an open resolver for them. Config.Interface binds the relay's sockets
// to the run's veth (SO_BINDTODEVICE), so queries arriving over any other
// device find no socket, and Config.Client drops queries from any source
// but the program's address.
//
// # Network namespaces
//
// Listen binds in the network namespace of the calling thread: nsntrace
// calls it in the host namespace, on the host end of the veth, after the
// gateway address exists. Upstream queries are sent from the same
// namespace, so they reach the host's loopback resolver and are not
// captured (they never cross the veth).
//
// # Privileges
//
// Binding port 53 needs CAP_NET_BIND_SERVICE, which nsntrace (root) has.
package dnsrelay
