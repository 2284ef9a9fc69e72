// Package rawcap captures packets from one network interface with an
// AF_PACKET socket and a TPACKET_V3 memory-mapped receive ring, in pure Go.
//
// The socket is opened with protocol 0 (nothing is queued), the classic BPF
// filter is attached, the ring is set up and mapped, and only then
// is the socket bound to ETH_P_ALL on the interface: no packet the filter
// rejects can slip in before the filter is there.
//
// Readers wait for retired blocks in poll(2), on the socket and on an
// eventfd, outside the Go runtime poller (whose thread would wake for every
// block); closing the ring, Wake or cancelling the context write the
// eventfd and unblock them at once. On a busy link a reader paces itself:
// it sleeps a few milliseconds between reads and takes several blocks at a
// time (pace.go). Packets are
// handed to the caller as zero-copy views valid during the callback, and
// every block goes back to the kernel as soon as its packets were delivered.
// Stopping loses nothing and lets nothing else in: a filter that rejects
// everything replaces the caller's, a re-bind waits out (synchronize_net)
// every packet still being written, and then every packet the kernel
// accepted, including those of the block it has not retired yet, is
// delivered before Run returns; the kernel's counters no longer move.
// bind(2) alone cannot stop a packet socket: protocol 0 keeps the current
// protocol, and ifindex 0 then means every interface.
//
// # Privileges
//
// Opening a ring needs CAP_NET_RAW in the user namespace owning the network
// namespace of the interface.
//
// # Network namespaces
//
// Config.NetNS opens the socket in another network namespace; the ring then
// captures that namespace's interface with the given index. On that
// namespace's lo, Config.DropOutgoing keeps one copy of each packet: the
// kernel hands a packet socket both the sent and the received one.
package rawcap
