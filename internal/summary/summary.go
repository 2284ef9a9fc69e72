package summary

import "time"

// DefaultMaxConversations bounds the conversation table.
const DefaultMaxConversations = 65536

// Config tunes a Flows table; nil means defaults.
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

func nsTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }
