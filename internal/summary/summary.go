package summary

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// DefaultMaxConversations bounds the conversation table.
const DefaultMaxConversations = 65536

// maxNames bounds the learned names and pending DNS queries.
const maxNames = 65536

// Config tunes a Tracker; nil means defaults.
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
	return [...]string{"other", "tcp", "udp", "icmp", "icmpv6"}[p]
}

type key struct {
	proto         Proto
	local, remote netip.AddrPort
}

type conv struct {
	outbound            bool // the program initiated it
	pktsOut, pktsIn     uint64
	bytesOut, bytesIn   uint64
	first, last         int64
	synOut, synIn       bool
	synAckIn, synAckOut bool
	rstIn, rstOut       bool
	midStream           bool
	dnsBuf              []byte // TCP DNS stream reassembly (to the server)
	dnsBufIn            []byte
	names               map[string]struct{}
}

type dnsQuery struct {
	name  string
	qtype string
	done  bool
}

// Tracker keeps the conversation table of one trace. It is not safe for
// concurrent use: feed it from one goroutine.
type Tracker struct {
	max       int
	convs     map[key]*conv
	untracked uint64
	names     map[netip.Addr][]string
	queries   map[uint16]*dnsQuery // by DNS id
	qorder    []uint16
	failures  []Failure
	packets   uint64

	// OnName, if set, is called for every new (address, name) pair.
	OnName func(netip.Addr, string)

	parser  *gopacket.DecodingLayerParser
	eth     layers.Ethernet
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
	udp     layers.UDP
	icmp4   layers.ICMPv4
	icmp6   layers.ICMPv6
	payload gopacket.Payload
	decoded []gopacket.LayerType
}

// New returns an empty Tracker.
func New(cfg *Config) *Tracker {
	t := &Tracker{
		max:     DefaultMaxConversations,
		convs:   map[key]*conv{},
		names:   map[netip.Addr][]string{},
		queries: map[uint16]*dnsQuery{},
		decoded: make([]gopacket.LayerType, 0, 8),
	}
	if cfg != nil && cfg.MaxConversations > 0 {
		t.max = cfg.MaxConversations
	}
	t.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet,
		&t.eth, &t.ip4, &t.ip6, &t.tcp, &t.udp, &t.icmp4, &t.icmp6, &t.payload)
	t.parser.IgnoreUnsupported = true
	return t
}

// Observe accounts one Ethernet frame: data are the captured bytes, length
// the original frame length, ts the capture time in Unix ns, outbound
// whether the traced program sent it.
func (t *Tracker) Observe(data []byte, length int, ts int64, outbound bool) {
	t.packets++
	t.decoded = t.decoded[:0]
	_ = t.parser.DecodeLayers(data, &t.decoded) // partial decodes still count
	var (
		src, dst     netip.Addr
		sport, dport uint16
		proto        = ProtoOther
		haveIP       bool
		tcpL         *layers.TCP
		payload      []byte
	)
	for _, lt := range t.decoded {
		switch lt {
		case layers.LayerTypeIPv4:
			src, _ = netip.AddrFromSlice(t.ip4.SrcIP.To4())
			dst, _ = netip.AddrFromSlice(t.ip4.DstIP.To4())
			haveIP = true
		case layers.LayerTypeIPv6:
			src, _ = netip.AddrFromSlice(t.ip6.SrcIP)
			dst, _ = netip.AddrFromSlice(t.ip6.DstIP)
			haveIP = true
		case layers.LayerTypeTCP:
			proto, sport, dport, tcpL = ProtoTCP, uint16(t.tcp.SrcPort), uint16(t.tcp.DstPort), &t.tcp
			payload = t.tcp.Payload
		case layers.LayerTypeUDP:
			proto, sport, dport = ProtoUDP, uint16(t.udp.SrcPort), uint16(t.udp.DstPort)
			payload = t.udp.Payload
		case layers.LayerTypeICMPv4:
			proto = ProtoICMP
		case layers.LayerTypeICMPv6:
			proto = ProtoICMPv6
		}
	}
	if !haveIP || chatter(proto, &t.icmp4, &t.icmp6) {
		return // link-level chatter and ICMP errors: not conversations
	}
	var k key
	if outbound {
		k = key{proto, netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)}
	} else {
		k = key{proto, netip.AddrPortFrom(dst, dport), netip.AddrPortFrom(src, sport)}
	}
	c := t.convs[k]
	if c == nil {
		if len(t.convs) >= t.max {
			t.untracked++
			return
		}
		c = &conv{first: ts, outbound: outbound}
		if tcpL != nil {
			switch {
			case tcpL.SYN && !tcpL.ACK:
				c.outbound = outbound
			case tcpL.SYN && tcpL.ACK:
				c.outbound = !outbound // the SYN went the other way, unseen
			default:
				c.midStream = true
				// Mid-stream: the side with the ephemeral port started it.
				c.outbound = k.local.Port() > k.remote.Port()
			}
		}
		t.convs[k] = c
	}
	c.last = ts
	if outbound {
		c.pktsOut++
		c.bytesOut += uint64(length)
	} else {
		c.pktsIn++
		c.bytesIn += uint64(length)
	}
	if tcpL != nil {
		switch {
		case tcpL.SYN && !tcpL.ACK:
			if outbound {
				c.synOut = true
			} else {
				c.synIn = true
			}
		case tcpL.SYN && tcpL.ACK:
			if outbound {
				c.synAckOut = true
			} else {
				c.synAckIn = true
			}
		}
		if tcpL.RST {
			if outbound {
				c.rstOut = true
			} else {
				c.rstIn = true
			}
		}
	}
	if len(payload) == 0 {
		return
	}
	switch {
	case proto == ProtoUDP && (sport == 53 || dport == 53):
		t.dns(payload, dport == 53)
	case proto == ProtoTCP && (sport == 53 || dport == 53):
		t.dnsTCP(c, payload, dport == 53)
	case proto == ProtoTCP && outbound:
		if name := sni(payload); name != "" {
			t.addConvName(c, k.remote.Addr(), name)
		} else if name := httpHost(payload); name != "" {
			t.addConvName(c, k.remote.Addr(), name)
		}
	}
}

func (t *Tracker) addConvName(c *conv, a netip.Addr, name string) {
	if c.names == nil {
		c.names = map[string]struct{}{}
	}
	if len(c.names) < 16 {
		c.names[name] = struct{}{}
	}
	t.addName(a, name)
}

func (t *Tracker) addName(a netip.Addr, name string) {
	for _, n := range t.names[a] {
		if n == name {
			return
		}
	}
	if len(t.names) >= maxNames && t.names[a] == nil {
		return
	}
	t.names[a] = append(t.names[a], name)
	if t.OnName != nil {
		t.OnName(a, name)
	}
}

// dnsTCP reassembles DNS messages (2-byte length prefix) of a TCP stream,
// in order, and parses each complete one.
func (t *Tracker) dnsTCP(c *conv, payload []byte, query bool) {
	buf := &c.dnsBufIn
	if query {
		buf = &c.dnsBuf
	}
	if len(*buf)+len(payload) > 2+65535 {
		*buf = nil // lost sync: give up on this stream's backlog
		return
	}
	*buf = append(*buf, payload...)
	for len(*buf) >= 2 {
		n := int(binary.BigEndian.Uint16(*buf))
		if len(*buf) < 2+n {
			return
		}
		t.dns((*buf)[2:2+n], query)
		*buf = (*buf)[2+n:]
	}
	if len(*buf) == 0 {
		*buf = nil
	}
}

// Names returns the names learned for each remote address.
func (t *Tracker) Names() map[netip.Addr][]string { return t.names }

// Packets is the number of frames observed.
func (t *Tracker) Packets() uint64 { return t.packets }

func nsTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// chatter reports ICMP messages that are not conversations of their own:
// errors about another conversation's packets (unreachable, time exceeded,
// ...), and IPv6 neighbour discovery and multicast listener messages, the
// link-level chatter of every IPv6 interface.
func chatter(p Proto, i4 *layers.ICMPv4, i6 *layers.ICMPv6) bool {
	switch p {
	case ProtoICMP:
		switch i4.TypeCode.Type() {
		case layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4TypeSourceQuench, layers.ICMPv4TypeRedirect,
			layers.ICMPv4TypeTimeExceeded, layers.ICMPv4TypeParameterProblem:
			return true
		}
	case ProtoICMPv6:
		t := i6.TypeCode.Type()
		return t < 128 || (t >= 130 && t <= 137) || t == 143
	}
	return false
}
