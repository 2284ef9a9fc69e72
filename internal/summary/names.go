package summary

import (
	"encoding/binary"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// maxNames bounds the learned names and pending DNS queries.
const maxNames = 65536

// maxStreams bounds the TCP DNS streams being reassembled at once.
const maxStreams = 1024

type dnsQuery struct {
	name  string
	qtype string
	done  bool
}

// dnsStream holds the unparsed rest of the two directions of a TCP DNS
// conversation (messages carry a 2-byte length prefix, RFC 1035 4.2.2).
type dnsStream struct {
	query, answer tcpHalf
}

// tcpHalf is one direction of a TCP DNS stream: the bytes of a message not
// complete yet, and the sequence number the next new byte has.
type tcpHalf struct {
	buf     []byte
	next    uint32
	started bool
	lost    bool // a segment went missing: the stream cannot be followed
}

// Names learns names for remote addresses from the few packets that can
// carry them (Flows.Account picks them): DNS answers over UDP and TCP,
// CNAME chains included, TLS ClientHello SNI and HTTP/1 Host headers; and
// it records DNS lookups that failed. It decodes with gopacket, away from
// the capture path. It is not safe for concurrent use.
type Names struct {
	names    map[netip.Addr][]string
	queries  map[uint16]*dnsQuery // by DNS id
	qorder   []uint16
	failures []Failure
	// failed holds the failures for deduplication: a program that keeps
	// failing lookups must not make each new one cost a scan of the list.
	failed  map[Failure]struct{}
	streams map[flowKey]*dnsStream

	// tlsHellos counts the TLS ClientHellos the program sent.
	tlsHellos int

	// OnName, if set, is called for every new (address, name) pair.
	OnName func(netip.Addr, string)

	parser  *gopacket.DecodingLayerParser
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	ip4     layers.IPv4
	ip6     layers.IPv6
	ip6ext  layers.IPv6ExtensionSkipper
	tcp     layers.TCP
	udp     layers.UDP
	payload gopacket.Payload
	decoded []gopacket.LayerType
}

// NewNames returns a decoder that knows no names yet.
func NewNames() *Names {
	n := &Names{
		names:   map[netip.Addr][]string{},
		queries: map[uint16]*dnsQuery{},
		failed:  map[Failure]struct{}{},
		streams: map[flowKey]*dnsStream{},
		decoded: make([]gopacket.LayerType, 0, 8),
	}
	n.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet,
		&n.eth, &n.dot1q, &n.ip4, &n.ip6, &n.ip6ext, &n.tcp, &n.udp, &n.payload)
	n.parser.IgnoreUnsupported = true
	return n
}

// Decode learns what it can from one Ethernet frame (or its head) that
// the traced program sent (outbound) or received.
func (n *Names) Decode(data []byte, outbound bool) {
	n.decoded = n.decoded[:0]
	_ = n.parser.DecodeLayers(data, &n.decoded) // a partial decode may still hold a name
	var (
		k       flowKey
		v6      bool
		proto   Proto
		haveIP  bool
		sport   uint16
		dport   uint16
		payload []byte
	)
	var src, dst []byte
	for _, lt := range n.decoded {
		switch lt {
		case layers.LayerTypeIPv4:
			if haveIP {
				return // a tunnel: not one of the program's own conversations
			}
			src, dst, haveIP = n.ip4.SrcIP.To4(), n.ip4.DstIP.To4(), true
		case layers.LayerTypeIPv6:
			if haveIP {
				return
			}
			src, dst, haveIP, v6 = n.ip6.SrcIP, n.ip6.DstIP, true, true
		case layers.LayerTypeTCP:
			proto, sport, dport, payload = ProtoTCP, uint16(n.tcp.SrcPort), uint16(n.tcp.DstPort), n.tcp.Payload
		case layers.LayerTypeUDP:
			proto, sport, dport, payload = ProtoUDP, uint16(n.udp.SrcPort), uint16(n.udp.DstPort), n.udp.Payload
		}
	}
	if !haveIP || len(payload) == 0 {
		return
	}
	k.setAddrs(src, dst, outbound)
	if outbound {
		k.meta = makeMeta(sport, dport, proto, v6)
	} else {
		k.meta = makeMeta(dport, sport, proto, v6)
	}
	switch {
	case proto == ProtoUDP && (sport == 53 || dport == 53):
		n.dns(payload, dport == 53)
	case proto == ProtoTCP && (sport == 53 || dport == 53):
		n.dnsTCP(k, n.tcp.Seq, payload, dport == 53)
	case proto == ProtoTCP && outbound:
		if clientHello(payload) {
			n.tlsHellos++
		}
		if name := sni(payload); name != "" {
			n.addName(k.remoteAddrPort().Addr(), name)
		} else if name := httpHost(payload); name != "" {
			n.addName(k.remoteAddrPort().Addr(), name)
		}
	}
}

func (n *Names) addName(a netip.Addr, name string) {
	for _, have := range n.names[a] {
		if have == name {
			return
		}
	}
	if len(n.names) >= maxNames && n.names[a] == nil {
		return
	}
	n.names[a] = append(n.names[a], name)
	if n.OnName != nil {
		n.OnName(a, name)
	}
}

// dnsTCP reassembles the DNS messages of a TCP stream by sequence number
// and parses each complete one. A retransmitted segment adds only what it
// has beyond what came before; after a missing segment the stream's
// message boundaries are unknown and it is given up (its lookups are
// still in the capture file).
func (n *Names) dnsTCP(k flowKey, seq uint32, payload []byte, query bool) {
	st := n.streams[k]
	if st == nil {
		if len(n.streams) >= maxStreams {
			// Streams stay while they last, for their sequence numbers;
			// those with nothing pending make room when it runs out.
			for k, st := range n.streams {
				if st.query.buf == nil && st.answer.buf == nil {
					delete(n.streams, k)
				}
			}
			if len(n.streams) >= maxStreams {
				return
			}
		}
		st = &dnsStream{}
		n.streams[k] = st
	}
	h := &st.answer
	if query {
		h = &st.query
	}
	if h.lost {
		return
	}
	if !h.started {
		h.started, h.next = true, seq
	}
	switch d := int32(seq - h.next); {
	case d > 0:
		h.lost, h.buf = true, nil
		return
	case d < 0:
		old := int(-int64(d))
		if old >= len(payload) {
			return // all of it came before
		}
		payload = payload[old:]
	}
	h.next += uint32(len(payload))
	if len(h.buf)+len(payload) > 2+65535 {
		h.lost, h.buf = true, nil // no message is that long: not DNS
		return
	}
	h.buf = append(h.buf, payload...)
	for len(h.buf) >= 2 {
		m := int(binary.BigEndian.Uint16(h.buf))
		if len(h.buf) < 2+m {
			return
		}
		n.dns(h.buf[2:2+m], query)
		h.buf = h.buf[2+m:]
	}
	if len(h.buf) == 0 {
		h.buf = nil
	}
}

// Names returns the names learned for each remote address.
func (n *Names) Names() map[netip.Addr][]string { return n.names }

// TLSSeen reports whether the program began a TLS handshake (sent a
// ClientHello) over TCP.
func (n *Names) TLSSeen() bool { return n.tlsHellos > 0 }
