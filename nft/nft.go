package nft

import (
	"net/netip"
	"strconv"
)

// TableName is the name of the table of the run whose process is pid:
// "nsntrace_PID", a name nft(8) takes without quoting.
func TableName(pid int) string { return "nsntrace_" + strconv.Itoa(pid) }

// Spec describes the firewall state of one run.
type Spec struct {
	// Table is the table's name; "" means TableName of the calling
	// process.
	Table string
	// Subnet (IPv4) and Subnet6 (optional) are masqueraded out of Uplink.
	Subnet, Subnet6 netip.Prefix
	// Uplink is the host's uplink device; Veth the run's host veth end.
	Uplink, Veth string
	// Peer and Peer6 (optional) are the program's addresses: where
	// published ports lead.
	Peer, Peer6 netip.Addr
	// Publish are the program's ports reachable from the host and beyond
	// (-p).
	Publish []Port
	// Egress, if set, is the enforced egress policy: the program reaches
	// only what it allows.
	Egress *Egress
}
