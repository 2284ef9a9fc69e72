package nft

import "net/netip"

// Spec describes the firewall state of one run.
type Spec struct {
	// Table is the table's name; "" means "nsntrace_PID".
	Table string
	// Subnet (IPv4) and Subnet6 (optional) are masqueraded out of Uplink.
	Subnet, Subnet6 netip.Prefix
	// Uplink is the host's uplink device; Veth the run's host veth end.
	Uplink, Veth string
}
