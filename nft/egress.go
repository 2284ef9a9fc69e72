package nft

import (
	"net/netip"
)

// Egress is an enforced egress policy (--policy enforce): what the
// program may reach, through the host (the forward path) or on it (the
// input path). Everything else it starts is refused at once, TCP with a
// reset, the rest with an ICMP administratively-prohibited error.
type Egress struct {
	// Allow are the address rules: fixed prefixes, ports and protocols.
	Allow []EgressRule
	// Relay, if valid, is the program's DNS server on the host (the
	// relay on its gateway), always allowed over UDP and TCP.
	Relay netip.AddrPort
}

// EgressRule allows the addresses of Prefix, on Port (0: any) over Proto
// (0: any; a Port needs TCP or UDP).
type EgressRule struct {
	Prefix netip.Prefix
	Port   uint16
	Proto  Proto
}

// The sets of addresses DNS answers granted, which Table.Grant fills at run
// time, each element with a timeout. One set per family and kind of key,
// so that a name rule's port and protocol are enforced for the addresses
// its answers gave: the address alone (a rule without port or protocol),
// address . protocol (a rule with a protocol only), and address .
// protocol . port. Concatenated keys keep it at six sets whatever the
// number of rules, where a set per rule would grow the chain per rule.
const (
	setAddr4      = "allow4"
	setAddr6      = "allow6"
	setAddrProto4 = "allow4t"
	setAddrProto6 = "allow6t"
	setAddrPort4  = "allow4p"
	setAddrPort6  = "allow6p"
)
