package summary

import (
	"encoding/binary"
	"net/netip"
)

// flowKey names a conversation from the traced program's point of view.
// It is five words, so that the capture path builds, hashes and compares
// it with a handful of instructions and no allocation: the local and
// remote addresses as loaded from the packet (IPv4 in the low half of the
// first word), and ports, protocol and family in meta.
type flowKey struct {
	l0, l1, r0, r1 uint64
	meta           uint64 // localPort | remotePort<<16 | proto<<32 | v6<<40
}

func (k *flowKey) eq(o *flowKey) bool {
	return k.l0 == o.l0 && k.l1 == o.l1 && k.r0 == o.r0 && k.r1 == o.r1 && k.meta == o.meta
}

func makeMeta(localPort, remotePort uint16, p Proto, v6 bool) uint64 {
	m := uint64(localPort) | uint64(remotePort)<<16 | uint64(p)<<32
	if v6 {
		m |= 1 << 40
	}
	return m
}

func (k *flowKey) localPort() uint16  { return uint16(k.meta) }
func (k *flowKey) remotePort() uint16 { return uint16(k.meta >> 16) }
func (k *flowKey) proto() Proto       { return Proto(k.meta >> 32) }
func (k *flowKey) v6() bool           { return k.meta>>40&1 != 0 }

func (k *flowKey) addr(w0, w1 uint64) netip.Addr {
	var a [16]byte
	binary.LittleEndian.PutUint64(a[:], w0)
	binary.LittleEndian.PutUint64(a[8:], w1)
	if k.v6() {
		return netip.AddrFrom16(a)
	}
	return netip.AddrFrom4([4]byte(a[:4]))
}

// localAddrPort and remoteAddrPort turn the key back into addresses for
// reports and the decoder.
func (k *flowKey) localAddrPort() netip.AddrPort {
	return netip.AddrPortFrom(k.addr(k.l0, k.l1), k.localPort())
}

func (k *flowKey) remoteAddrPort() netip.AddrPort {
	return netip.AddrPortFrom(k.addr(k.r0, k.r1), k.remotePort())
}

// setAddrs fills the key's addresses from a packet's source and
// destination (4 or 16 bytes each).
func (k *flowKey) setAddrs(src, dst []byte, outbound bool) {
	var s0, s1, d0, d1 uint64
	if len(src) == 16 && len(dst) == 16 {
		s0, s1 = binary.LittleEndian.Uint64(src), binary.LittleEndian.Uint64(src[8:])
		d0, d1 = binary.LittleEndian.Uint64(dst), binary.LittleEndian.Uint64(dst[8:])
	} else if len(src) == 4 && len(dst) == 4 {
		s0, d0 = uint64(binary.LittleEndian.Uint32(src)), uint64(binary.LittleEndian.Uint32(dst))
	}
	if outbound {
		k.l0, k.l1, k.r0, k.r1 = s0, s1, d0, d1
	} else {
		k.l0, k.l1, k.r0, k.r1 = d0, d1, s0, s1
	}
}

// TCP flag bits as they sit in byte 13 of the TCP header.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// parsed is what parseFrame learns from one frame's headers.
type parsed struct {
	key      flowKey
	tcpFlags uint8 // byte 13 of the TCP header; 0 unless key.proto is ProtoTCP
	l4off    int   // offset in the frame of the TCP/UDP payload
	payload  int   // bytes of TCP/UDP payload captured (within the IP length)
	fast     bool  // parse4Fast read it: Flows may remember the shape
}

const (
	etherIPv4  = 0x0800
	etherIPv6  = 0x86dd
	etherDot1Q = 0x8100
	etherQinQ  = 0x88a8
)

// parseFrame reads the headers of an Ethernet frame at fixed offsets: as
// many 802.1Q/802.1ad tags as there are, IPv4 (with options) or IPv6 (with
// hop-by-hop, routing, destination and atomic fragment headers), then TCP,
// UDP or ICMP. It reports false for frames that are not a conversation:
// not IP, IP headers cut short, and ICMP chatter (errors about other
// packets, neighbour discovery, multicast listener reports).
//
// What it accepts agrees with gopacket's decoders (the oracle test holds
// them side by side), so that counts match what Wireshark-like tools
// show: a transport header gopacket would reject makes the packet an
// "other" conversation between the two addresses, as do fragments after
// the first, whose ports are not in the packet. It does not validate IP
// or TCP options beyond their lengths: the kernel accepted the packet.
//
// parseFrame must not allocate: it runs on the capture path.
func parseFrame(b []byte, outbound bool, p *parsed) bool {
	if len(b) >= 42 && b[12] == 0x08 && b[13] == 0x00 && b[14] == 0x45 && parse4Fast(b, outbound, p) {
		p.fast = true
		return true
	}
	p.fast = false
	return parseAny(b, outbound, p)
}

// parse4Fast handles the frame nearly every busy trace is made of,
// untagged IPv4 without options or fragmentation carrying a whole TCP or
// UDP header, with few branches and word loads; it gives up (false) on
// anything else, which parseAny then reads field by field.
func parse4Fast(b []byte, outbound bool, p *parsed) bool {
	n := int(binary.BigEndian.Uint16(b[16:]))
	if n == 0 {
		n = len(b) - 14
	}
	end := min(len(b), 14+n) // Ethernet padding is no part of the packet
	if n < 28 || b[20]&0x3f|b[21] != 0 {
		return false
	}
	var meta uint64
	switch b[23] {
	case 6:
		if end < 54 {
			return false
		}
		doff := int(b[46]>>4) * 4
		if doff < 20 || 34+doff > end {
			return false
		}
		meta = uint64(ProtoTCP) << 32
		p.tcpFlags = b[47]
		p.l4off = 34 + doff
		p.payload = end - p.l4off
	case 17:
		ul := int(binary.BigEndian.Uint16(b[38:]))
		if ul == 0 {
			ul = end - 34 // jumbogram: the rest of the packet
		} else if ul < 8 {
			return false
		}
		meta = uint64(ProtoUDP) << 32
		p.tcpFlags = 0
		p.l4off = 42
		p.payload = min(ul, end-34) - 8
	default:
		return false
	}
	src, dst := uint64(binary.LittleEndian.Uint32(b[26:])), uint64(binary.LittleEndian.Uint32(b[30:]))
	sport, dport := uint64(binary.BigEndian.Uint16(b[34:])), uint64(binary.BigEndian.Uint16(b[36:]))
	k := &p.key
	k.l1, k.r1 = 0, 0
	if outbound {
		k.l0, k.r0, k.meta = src, dst, meta|sport|dport<<16
	} else {
		k.l0, k.r0, k.meta = dst, src, meta|dport|sport<<16
	}
	return true
}

// parseAny reads any frame's headers, field by field.
func parseAny(b []byte, outbound bool, p *parsed) bool {
	if len(b) < 14 {
		return false
	}
	et := binary.BigEndian.Uint16(b[12:])
	off := 14
	for et == etherDot1Q || et == etherQinQ {
		if len(b) < off+4 {
			return false
		}
		et = binary.BigEndian.Uint16(b[off+2:])
		off += 4
	}
	var (
		src, dst []byte
		l4       []byte
		proto    uint8
		frag     bool // no transport header: a fragment, or cut short
		v6       bool
	)
	switch et {
	case etherIPv4:
		ip := b[off:]
		if len(ip) < 20 {
			return false
		}
		ihl := int(ip[0]&0x0f) * 4
		n := int(binary.BigEndian.Uint16(ip[2:]))
		if n == 0 {
			n = len(ip) // TSO/BIG TCP: the length does not fit the field
		}
		if n < 20 || ihl < 20 || ihl > n {
			return false
		}
		if len(ip) > n {
			ip = ip[:n] // Ethernet padding is no part of the packet
		} else if ihl > len(ip) {
			return false
		}
		if ihl > 20 && !ipv4OptionsOK(ip[20:ihl]) {
			return false
		}
		src, dst, proto = ip[12:16], ip[16:20], ip[9]
		frag = binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 // more fragments, or an offset
		l4 = ip[ihl:]
		v6 = false
	case etherIPv6:
		ip := b[off:]
		if len(ip) < 40 {
			return false
		}
		n := int(binary.BigEndian.Uint16(ip[4:]))
		src, dst, proto = ip[8:24], ip[24:40], ip[6]
		l4 = ip[40:]
		if n == 0 {
			// A jumbogram, or a BIG TCP packet whose hop-by-hop jumbo
			// option the kernel removed: the payload is what is there.
			// (gopacket refuses the latter; see the oracle test.)
		} else if n < len(l4) {
			l4 = l4[:n]
		}
		// Extension headers: each is at least 8 bytes, so this ends.
	ext:
		for first := true; ; first = false {
			switch proto {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(l4) < 2 || len(l4) < int(l4[1])*8+8 {
					if first && proto == 0 {
						return false // hop-by-hop options belong to the IPv6 header
					}
					frag = true // cut short: no transport header to read
					break ext
				}
				proto, l4 = l4[0], l4[int(l4[1])*8+8:]
			case 44: // fragment
				if len(l4) < 8 {
					frag = true
					break ext
				}
				// Only an atomic fragment (offset 0, no more) carries the
				// next header whole.
				frag = binary.BigEndian.Uint16(l4[2:])&0xfff9 != 0
				proto, l4 = l4[0], l4[8:]
				if frag {
					break ext
				}
			default:
				break ext
			}
		}
		v6 = true
	default:
		return false
	}

	var sport, dport uint16
	kind := ProtoOther
	p.tcpFlags, p.payload, p.l4off = 0, 0, 0
	if !frag {
		switch proto {
		case 6:
			if len(l4) >= 20 {
				doff := int(l4[12]>>4) * 4
				if doff >= 20 && doff <= len(l4) {
					kind, sport, dport = ProtoTCP, binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
					p.tcpFlags = l4[13]
					p.payload = len(l4) - doff
					p.l4off = len(b) - len(l4) + doff
				}
			}
		case 17:
			if len(l4) >= 8 {
				ul := int(binary.BigEndian.Uint16(l4[4:]))
				switch {
				case ul >= 8:
					kind = ProtoUDP
					p.payload = min(ul, len(l4)) - 8
				case ul == 0: // jumbogram: the rest of the packet
					kind = ProtoUDP
					p.payload = len(l4) - 8
				}
				if kind == ProtoUDP {
					sport, dport = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
					p.l4off = len(b) - len(l4) + 8
				}
			}
		case 1:
			if len(l4) >= 8 {
				if icmp4Chatter(l4[0]) {
					return false
				}
				kind = ProtoICMP
			}
		case 58:
			if len(l4) >= 4 {
				if icmp6Chatter(l4[0]) {
					return false
				}
				kind = ProtoICMPv6
			}
		}
	}

	p.key.setAddrs(src, dst, outbound)
	if outbound {
		p.key.meta = makeMeta(sport, dport, kind, v6)
	} else {
		p.key.meta = makeMeta(dport, sport, kind, v6)
	}
	return true
}

// ipv4OptionsOK reports whether IPv4 options are well-formed as to their
// lengths (RFC 791 3.1), as gopacket requires of a packet it decodes.
func ipv4OptionsOK(o []byte) bool {
	for len(o) > 0 {
		switch o[0] {
		case 0: // end of options
			return true
		case 1: // no-operation
			o = o[1:]
		default:
			if len(o) < 2 || o[1] < 2 || int(o[1]) > len(o) {
				return false
			}
			o = o[o[1]:]
		}
	}
	return true
}

// icmp4Chatter reports ICMP types that are errors about another
// conversation's packets, not conversations of their own.
func icmp4Chatter(t uint8) bool {
	switch t {
	case 3, 4, 5, 11, 12: // unreachable, source quench, redirect, time exceeded, parameter problem
		return true
	}
	return false
}

// icmp6Chatter reports ICMPv6 errors, and neighbour discovery and multicast
// listener messages: the link-level chatter of every IPv6 interface.
func icmp6Chatter(t uint8) bool {
	return t < 128 || (t >= 130 && t <= 137) || t == 143
}
