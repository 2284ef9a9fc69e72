package summary

import "time"

// DefaultMaxConversations bounds the conversation table.
const DefaultMaxConversations = 65536

// Config tunes a Tracker or a Flows table; nil means defaults.
type Config struct {
	// MaxConversations caps the table (default DefaultMaxConversations).
	MaxConversations int
}

// Proto is a conversation's protocol.
type Proto uint8

// Protocols of conversations.
const (
	ProtoOther Proto = iota
	ProtoTCP
	ProtoUDP
	ProtoICMP
	ProtoICMPv6
)

func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "icmpv6"
	}
	return "other"
}

// Tracker is a Flows table and a Names decoder fed from one goroutine:
// every frame is accounted, and the few that may carry names are decoded
// at once. A capture that must not wait for decoding feeds a Flows in line
// and a Names elsewhere instead, and joins them with NewReport. A Tracker
// is not safe for concurrent use.
type Tracker struct {
	flows *Flows
	names *Names
}

// New returns an empty Tracker.
func New(cfg *Config) *Tracker {
	return &Tracker{flows: NewFlows(cfg), names: NewNames()}
}

// Observe accounts one Ethernet frame: data are the captured bytes, length
// the original frame length, ts the capture time in Unix ns, outbound
// whether the traced program sent it.
func (t *Tracker) Observe(data []byte, length int, ts int64, outbound bool) {
	if n := t.flows.Account(data, length, ts, outbound); n > 0 {
		t.names.Decode(data[:n], outbound)
	}
}

// Flows is the tracker's conversation table.
func (t *Tracker) Flows() *Flows { return t.flows }

// Names is the tracker's name decoder; Names().Names() are the names
// learned for each remote address.
func (t *Tracker) Names() *Names { return t.names }

// Report builds the summary.
func (t *Tracker) Report(m Meta) *Report { return NewReport(m, t.flows, t.names) }

func nsTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }
