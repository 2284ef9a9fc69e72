// Package nft installs the firewall state of one nsntrace run through
// nftables (google/nftables and our own netlink batch; no nft or iptables
// binary): masquerade of the run's subnets out of the uplink, and a forward
// chain that lets through only what the program's namespace started.
//
// # The forward path
//
// Toward the run's veth only packets of connections conntrack already
// knows (ct state established,related) pass; from it only packets out of
// the uplink. Everything else to or from the veth is dropped: a route to
// the run's subnet does not open servers inside the trace to the uplink,
// and concurrent runs (whose veths are all directly connected on the
// host) cannot reach each other.
//
// # One table, owned
//
// Everything lives in one table of family inet per run, created with
// NFT_TABLE_F_OWNER on a netlink socket the Table keeps open for the run.
// The kernel (>= 5.12) deletes an owned table when its socket closes, so the
// table goes away with the process even after SIGKILL. Install probes the
// kernel first: without the owner flag, the table is created without it
// and a reaper (the binary re-executed, see MaybeReap) holding a pipe from
// the run deletes it when the pipe closes; without nat chains in inet
// tables (before 5.2), the run gets an ip and an ip6 table instead. google/nftables
// v0.3.0 ignores Table.Flags, so the table, its chains and rules are sent in
// a batch built here on an mdlayher/netlink socket, with rule expressions
// marshalled by google/nftables/expr.
//
// # Hosts that drop forwarded packets
//
// An accept in our table does not override a drop in another base chain on
// the same hook. Where another table has a forward base chain with policy
// drop (Docker and ufw leave `table ip filter` so), Install inserts accepts
// for our veth at the top of that chain, tagged with rule user data
// "nsntrace:PID", and Close removes them. Rules whose process is gone (after
// SIGKILL) are removed by Sweep, which the CLI calls at start-up and for
// --cleanup.
//
// # IP forwarding
//
// When net.ipv4.ip_forward (or net.ipv6.conf.all.forwarding, for runs with
// IPv6) is 0, Install enables it for the run and the last overlapping run
// restores the original value. Runs record themselves in
// /run/nsntrace-state/forward/NETNS/PID-START, under a flock, with the original
// value saved beside them. NETNS is the namespace's nsfs device, inode and
// netns cookie: inodes are reused once a namespace is freed, cookies never
// are, so a dead namespace's record is never taken for a new one's. START
// is the process's start time, which a recycled pid does not share. Sweep
// forgets records of dead runs and restores the value when no run is left,
// and removes the records of namespaces that no longer exist; it says what
// it removed.
//
// # Privileges
//
// CAP_NET_ADMIN in the network namespace nsntrace runs in.
package nft
