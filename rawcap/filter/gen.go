package filter

import (
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"
)

// Qualifiers (pcap-filter(7) "type", "dir" and "proto").
type pqual int

const (
	pDefault pqual = iota
	pLink
	pIP
	pIP6
	pARP
	pRARP
	pTCP
	pUDP
	pSCTP
	pICMP
	pICMP6
	pIGMP
	pIGRP
	pPIM
	pVRRP
	pCARP
	pAH
	pESP
)

var pqualNames = map[string]pqual{
	"link": pLink, "ether": pLink, "ppp": pLink, "slip": pLink,
	"ip": pIP, "ip6": pIP6, "arp": pARP, "rarp": pRARP, "tcp": pTCP, "udp": pUDP,
	"sctp": pSCTP, "icmp": pICMP, "icmp6": pICMP6, "igmp": pIGMP, "igrp": pIGRP,
	"pim": pPIM, "vrrp": pVRRP, "carp": pCARP, "ah": pAH, "esp": pESP,
}

func (p pqual) String() string {
	names := [...]string{pDefault: "", pLink: "link", pIP: "ip", pIP6: "ip6", pARP: "arp",
		pRARP: "rarp", pTCP: "tcp", pUDP: "udp", pSCTP: "sctp", pICMP: "icmp", pICMP6: "icmp6",
		pIGMP: "igmp", pIGRP: "igrp", pPIM: "pim", pVRRP: "vrrp", pCARP: "carp", pAH: "ah", pESP: "esp"}
	return names[p]
}

type dqual int

const (
	dDefault dqual = iota
	dSrc
	dDst
	dOr
	dAnd
)

type aqual int

const (
	aDefault aqual = iota
	aHost
	aNet
	aPort
	aPortrange
	aProto
)

// qual is the qualifier set an id is interpreted with; ok is false after a
// term that leaves nothing to inherit (see noQual).
type qual struct {
	proto pqual
	dir   dqual
	addr  aqual
	ok    bool
}

// Ethernet types and IP protocol numbers used by the generators.
const (
	etherIP    = 0x0800
	etherARP   = 0x0806
	etherRARP  = 0x8035
	etherIPv6  = 0x86dd
	etherATalk = 0x809b
	etherAARP  = 0x80f3
	etherIPX   = 0x8137
	etherMTU   = 1500

	llcSAPIP      = 0x06
	llcSAPISONS   = 0xfe
	llcSAPNetBEUI = 0xf0
	llcSAPIPX     = 0xe0

	protoICMP   = 1
	protoIGMP   = 2
	protoTCP    = 6
	protoIGRP   = 9
	protoUDP    = 17
	protoFrag   = 44
	protoESP    = 50
	protoAH     = 51
	protoICMPv6 = 58
	protoPIM    = 103
	protoVRRP   = 112
	protoSCTP   = 132
	protoAny    = -1 // libpcap's PROTO_UNDEF: tcp, udp and sctp

	vlanReg = 0 // scratch word holding the variable part of link offsets
)

// compiler holds the code-generation state that changes while the
// expression is read from left to right, as in libpcap: after `vlan`, every
// later link-layer payload offset moves.
type compiler struct {
	expr      string
	vlanVar   bool   // offsets have a variable part, kept in M[vlanReg]
	vlanConst uint32 // constant bytes added by inline VLAN tags
	vlanDepth int
	scratch   [memWords]bool
	abort     bool // a load in the relation being compiled can never succeed
}

func (c *compiler) errAt(pos int, format string, args ...any) error {
	return &SyntaxError{Pos: pos, Msg: fmt.Sprintf(format, args...), Expr: c.expr}
}

func loadOp(size int, mode uint16) uint16 {
	switch size {
	case 1:
		return clsLD | szB | mode
	case 2:
		return clsLD | szH | mode
	}
	return clsLD | szW | mode
}

// loadRel loads size bytes at base+off where base is a link-layer offset
// that VLAN tags shift.
func (c *compiler) loadRel(base, off uint32, size int) []bpf.RawInstruction {
	if c.vlanVar {
		return []bpf.RawInstruction{
			ins(clsLDX|szW|mdMEM, vlanReg),
			ins(loadOp(size, mdIND), base+c.vlanConst+off),
		}
	}
	return []bpf.RawInstruction{ins(loadOp(size, mdABS), base+c.vlanConst+off)}
}

func (c *compiler) loadLinkType(off uint32, size int) []bpf.RawInstruction {
	return c.loadRel(12, off, size)
}

func (c *compiler) loadNet(off uint32, size int) []bpf.RawInstruction {
	return c.loadRel(14, off, size)
}

// loadIPHdrLen leaves in X the offset of the IPv4 payload minus the
// constant part of the network offset (libpcap gen_loadx_iphdrlen).
func (c *compiler) loadIPHdrLen() []bpf.RawInstruction {
	if c.vlanVar {
		return []bpf.RawInstruction{
			ins(clsLDX|szW|mdMEM, vlanReg),
			ins(clsLD|szB|mdIND, 14+c.vlanConst),
			ins(clsALU|aluAND|srcK, 0xf),
			ins(clsALU|aluLSH|srcK, 2),
			ins(clsALU|aluADD|srcX, 0),
			ins(clsMISC|miscTAX, 0),
		}
	}
	return []bpf.RawInstruction{ins(clsLDX|szB|mdMSH, 14+c.vlanConst)}
}

// loadTrans4 loads from the IPv4 transport header.
func (c *compiler) loadTrans4(off uint32, size int) []bpf.RawInstruction {
	code := c.loadIPHdrLen()
	return append(code, ins(loadOp(size, mdIND), 14+c.vlanConst+off))
}

func test(code []bpf.RawInstruction, op uint16, k uint32) *cTest {
	return &cTest{code: code, op: clsJMP | op | srcK, k: k}
}

// mcmp compares the loaded value, masked, with v (libpcap gen_mcmp).
func mcmp(code []bpf.RawInstruction, v, mask uint32) cond {
	if mask == 0 {
		// Nothing of the value matters. libpcap's optimiser drops such a
		// test together with its load, so this does too.
		return nil
	}
	if mask != 0xffffffff {
		code = append(code[:len(code):len(code)], ins(clsALU|aluAND|srcK, mask))
	}
	return test(code, jmpJEQ, v)
}

func (c *compiler) cmpLinkType(off uint32, size int, v uint32) cond {
	return test(c.loadLinkType(off, size), jmpJEQ, v)
}

func (c *compiler) cmpNet(off uint32, size int, v uint32) cond {
	return test(c.loadNet(off, size), jmpJEQ, v)
}

// bcmp compares bytes at a link-header or network offset, last word first,
// as libpcap's gen_bcmp does.
func (c *compiler) bcmp(load func(off uint32, size int) []bpf.RawInstruction, off uint32, v []byte) cond {
	var out cond
	size := uint32(len(v))
	for size >= 4 {
		p := v[size-4:]
		t := test(load(off+size-4, 4), jmpJEQ, uint32(p[0])<<24|uint32(p[1])<<16|uint32(p[2])<<8|uint32(p[3]))
		out = and(out, t)
		size -= 4
	}
	for size >= 2 {
		p := v[size-2:]
		t := test(load(off+size-2, 2), jmpJEQ, uint32(p[0])<<8|uint32(p[1]))
		out = and(out, t)
		size -= 2
	}
	if size > 0 {
		out = and(out, test(load(off, 1), jmpJEQ, uint32(v[0])))
	}
	return out
}

func loadLinkHdr(off uint32, size int) []bpf.RawInstruction {
	return []bpf.RawInstruction{ins(loadOp(size, mdABS), off)}
}

// notOver1500 is true for 802.3 length fields (libpcap: not gt ETHERMTU).
func (c *compiler) notOver1500() cond {
	return not(test(c.loadLinkType(0, 2), jmpJGT, etherMTU))
}

func (c *compiler) snap(org uint32, ptype uint32) cond {
	b := []byte{0xaa, 0xaa, 0x03, byte(org >> 16), byte(org >> 8), byte(org), byte(ptype >> 8), byte(ptype)}
	return c.bcmp(c.loadNet, 0, b)
}

// linkType matches an Ethernet type or 802.2 SAP (gen_ether_linktype).
func (c *compiler) linkType(p uint32) cond {
	switch p {
	case llcSAPISONS, llcSAPIP, llcSAPNetBEUI:
		return and(c.notOver1500(), c.cmpNet(0, 2, p<<8|p))
	case llcSAPIPX:
		b := or(c.snap(0, etherIPX), or(c.cmpNet(0, 1, llcSAPIPX), c.cmpNet(0, 2, 0xffff)))
		return or(c.cmpLinkType(0, 2, etherIPX), and(c.notOver1500(), b))
	case etherATalk, etherAARP:
		var s cond
		if p == etherATalk {
			s = c.snap(0x080007, etherATalk)
		} else {
			s = c.snap(0, etherAARP)
		}
		return or(c.cmpLinkType(0, 2, p), and(c.notOver1500(), s))
	}
	if p <= etherMTU {
		return and(c.notOver1500(), c.cmpLinkType(2, 1, p))
	}
	return c.cmpLinkType(0, 2, p)
}

// ipFragOK is true unless the packet is a non-first IPv4 fragment.
func (c *compiler) ipFragOK() cond {
	return not(test(c.loadNet(6, 2), jmpJSET, 0x1fff))
}

// protoIn matches IP protocol v in IPv4, IPv6, or both (gen_proto).
func (c *compiler) protoIn(v uint32, p pqual) cond {
	switch p {
	case pIP:
		return and(c.linkType(etherIP), c.cmpNet(9, 1, v))
	case pIP6:
		inner := or(c.cmpNet(6, 1, v), and(c.cmpNet(6, 1, protoFrag), c.cmpNet(40, 1, v)))
		return and(c.linkType(etherIPv6), inner)
	}
	return or(c.protoIn(v, pIP), c.protoIn(v, pIP6))
}

// abbrev is a protocol name used alone, e.g. `tcp` (gen_proto_abbrev).
func (c *compiler) abbrev(p pqual, pos int) (cond, error) {
	switch p {
	case pSCTP:
		return c.protoIn(protoSCTP, pDefault), nil
	case pTCP:
		return c.protoIn(protoTCP, pDefault), nil
	case pUDP:
		return c.protoIn(protoUDP, pDefault), nil
	case pICMP:
		return c.protoIn(protoICMP, pIP), nil
	case pIGMP:
		return c.protoIn(protoIGMP, pIP), nil
	case pIGRP:
		return c.protoIn(protoIGRP, pIP), nil
	case pPIM:
		return c.protoIn(protoPIM, pDefault), nil
	case pVRRP, pCARP:
		return c.protoIn(protoVRRP, pIP), nil
	case pIP:
		return c.linkType(etherIP), nil
	case pARP:
		return c.linkType(etherARP), nil
	case pRARP:
		return c.linkType(etherRARP), nil
	case pIP6:
		return c.linkType(etherIPv6), nil
	case pICMP6:
		return c.protoIn(protoICMPv6, pIP6), nil
	case pAH:
		return c.protoIn(protoAH, pDefault), nil
	case pESP:
		return c.protoIn(protoESP, pDefault), nil
	}
	return nil, c.errAt(pos, "link layer applied in wrong context")
}

// genProto is `[ip|ip6|ether] proto N`.
func (c *compiler) genProto(v uint32, q qual, pos int) (cond, error) {
	if q.dir != dDefault {
		return nil, c.errAt(pos, "direction applied to 'proto'")
	}
	switch q.proto {
	case pDefault, pIP, pIP6:
		return c.protoIn(v, q.proto), nil
	case pLink:
		return c.linkType(v), nil
	case pARP, pRARP:
		return nil, c.errAt(pos, "%s does not encapsulate another protocol", q.proto)
	}
	return nil, c.errAt(pos, "'%s proto' is bogus", q.proto)
}

func (c *compiler) hostOp4(addr, mask uint32, dir dqual, etype, srcOff, dstOff uint32) cond {
	switch dir {
	case dSrc:
		return and(c.linkType(etype), mcmp(c.loadNet(srcOff, 4), addr, mask))
	case dDst:
		return and(c.linkType(etype), mcmp(c.loadNet(dstOff, 4), addr, mask))
	case dAnd:
		return and(c.hostOp4(addr, mask, dSrc, etype, srcOff, dstOff), c.hostOp4(addr, mask, dDst, etype, srcOff, dstOff))
	}
	return or(c.hostOp4(addr, mask, dSrc, etype, srcOff, dstOff), c.hostOp4(addr, mask, dDst, etype, srcOff, dstOff))
}

func typeName(a aqual) string {
	if a == aNet {
		return "net"
	}
	return "host"
}

// host4 matches an IPv4 address or network (gen_host): plain `host` also
// looks at ARP and RARP sender and target addresses.
func (c *compiler) host4(addr, mask uint32, q qual, pos int) (cond, error) {
	switch q.proto {
	case pDefault:
		b := c.hostOp4(addr, mask, q.dir, etherIP, 12, 16)
		b = or(b, c.hostOp4(addr, mask, q.dir, etherARP, 14, 24))
		return or(b, c.hostOp4(addr, mask, q.dir, etherRARP, 14, 24)), nil
	case pIP:
		return c.hostOp4(addr, mask, q.dir, etherIP, 12, 16), nil
	case pARP:
		return c.hostOp4(addr, mask, q.dir, etherARP, 14, 24), nil
	case pRARP:
		return c.hostOp4(addr, mask, q.dir, etherRARP, 14, 24), nil
	case pLink:
		return nil, c.errAt(pos, "link-layer modifier applied to %s", typeName(q.addr))
	case pIP6:
		return nil, c.errAt(pos, "'ip6' modifier applied to ip %s", typeName(q.addr))
	}
	return nil, c.errAt(pos, "'%s' modifier applied to %s", q.proto, typeName(q.addr))
}

func (c *compiler) hostOp6(addr, mask [16]byte, dir dqual, off uint32) cond {
	switch dir {
	case dSrc, dDst:
		if dir == dDst {
			off = 24
		}
		var b cond
		for w := 0; w < 4; w++ {
			a := uint32(addr[4*w])<<24 | uint32(addr[4*w+1])<<16 | uint32(addr[4*w+2])<<8 | uint32(addr[4*w+3])
			m := uint32(mask[4*w])<<24 | uint32(mask[4*w+1])<<16 | uint32(mask[4*w+2])<<8 | uint32(mask[4*w+3])
			b = and(b, mcmp(c.loadNet(off+uint32(4*w), 4), a, m))
		}
		return and(c.linkType(etherIPv6), b)
	case dAnd:
		return and(c.hostOp6(addr, mask, dSrc, 8), c.hostOp6(addr, mask, dDst, 24))
	}
	return or(c.hostOp6(addr, mask, dSrc, 8), c.hostOp6(addr, mask, dDst, 24))
}

func (c *compiler) host6(addr, mask [16]byte, q qual, pos int) (cond, error) {
	switch q.proto {
	case pDefault, pIP6:
		return c.hostOp6(addr, mask, q.dir, 8), nil
	case pLink:
		return nil, c.errAt(pos, "link-layer modifier applied to ip6 %s", typeName(q.addr))
	}
	return nil, c.errAt(pos, "'%s' modifier applied to ip6 %s", q.proto, typeName(q.addr))
}

func (c *compiler) etherHost(mac [6]byte, dir dqual) cond {
	switch dir {
	case dSrc:
		return c.bcmp(loadLinkHdr, 6, mac[:])
	case dDst:
		return c.bcmp(loadLinkHdr, 0, mac[:])
	case dAnd:
		return and(c.etherHost(mac, dSrc), c.etherHost(mac, dDst))
	}
	return or(c.etherHost(mac, dSrc), c.etherHost(mac, dDst))
}

// portDir builds the src/dst port test for dir from atom, which tests the
// port at offset off of the transport header (0 source, 2 destination).
func portDir(dir dqual, atom func(off uint32) cond) cond {
	switch dir {
	case dSrc:
		return atom(0)
	case dDst:
		return atom(2)
	case dAnd:
		return and(atom(0), atom(2))
	}
	return or(atom(0), atom(2))
}

func rangeAtom(load []bpf.RawInstruction, lo, hi uint32) cond {
	if lo > hi {
		lo, hi = hi, lo
	}
	return and(test(load, jmpJGE, lo), not(test(load, jmpJGT, hi)))
}

// ports matches port or port range [lo,hi] for proto (protoAny = tcp, udp
// and sctp) over IPv6 then IPv4, like libpcap's gen_port6/gen_port.
func (c *compiler) ports(lo, hi uint32, isRange bool, proto int, dir dqual) cond {
	protos := []uint32{uint32(proto)}
	if proto == protoAny {
		protos = []uint32{protoSCTP, protoTCP, protoUDP}
	}
	atom := func(load []bpf.RawInstruction) cond {
		if isRange {
			return rangeAtom(load, lo, hi)
		}
		return test(load, jmpJEQ, lo)
	}
	var v6, v4 cond
	for _, p := range protos {
		op := and(c.cmpNet(6, 1, p), portDir(dir, func(off uint32) cond { return atom(c.loadNet(40+off, 2)) }))
		v6 = or(v6, op)
	}
	for _, p := range protos {
		op := and(and(c.cmpNet(9, 1, p), c.ipFragOK()), portDir(dir, func(off uint32) cond { return atom(c.loadTrans4(off, 2)) }))
		v4 = or(v4, op)
	}
	return or(and(c.linkType(etherIPv6), v6), and(c.linkType(etherIP), v4))
}

func (c *compiler) portProto(q qual, what string, pos int) (int, error) {
	switch q.proto {
	case pDefault:
		return protoAny, nil
	case pTCP:
		return protoTCP, nil
	case pUDP:
		return protoUDP, nil
	case pSCTP:
		return protoSCTP, nil
	}
	return 0, c.errAt(pos, "illegal qualifier of '%s'", what)
}

// ncode is a number or dotted IPv4 prefix (gen_ncode); s is the HID text
// or "" for a plain number v.
func (c *compiler) ncode(s string, v uint32, q qual, pos int) (cond, error) {
	if !q.ok {
		return nil, c.errAt(pos, "syntax error: %q needs a qualifier such as host, net or port", c.tokText(s, v))
	}
	switch q.addr {
	case aDefault, aHost, aNet:
		if q.proto == pLink {
			return nil, c.errAt(pos, "illegal link layer address")
		}
		vlen := 32
		if s != "" {
			var err error
			v, vlen, err = parseHIDValue(s)
			if err != nil {
				return nil, c.errAt(pos, "invalid IPv4 address '%s'", s)
			}
		}
		mask := uint32(0xffffffff)
		if s == "" && q.addr == aNet {
			for v != 0 && v&0xff000000 == 0 {
				v <<= 8
				mask <<= 8
			}
		} else {
			v <<= uint(32 - vlen)
			mask <<= uint(32 - vlen)
		}
		return c.host4(v, mask, q, pos)
	case aPort:
		p, err := c.portProto(q, "port", pos)
		if err != nil {
			return nil, err
		}
		if v > 65535 {
			return nil, c.errAt(pos, "illegal port number %d > 65535", v)
		}
		return c.ports(v, v, false, p, q.dir), nil
	case aPortrange:
		p, err := c.portProto(q, "portrange", pos)
		if err != nil {
			return nil, err
		}
		if v > 65535 {
			return nil, c.errAt(pos, "illegal port number %d > 65535", v)
		}
		return c.ports(v, v, true, p, q.dir), nil
	case aProto:
		return c.genProto(v, q, pos)
	}
	return nil, c.errAt(pos, "syntax error")
}

func (c *compiler) tokText(s string, v uint32) string {
	if s != "" {
		return s
	}
	return fmt.Sprint(v)
}

// parseHIDValue reads 1 to 4 dotted decimal parts (libpcap __pcap_atoin).
func parseHIDValue(s string) (uint32, int, error) {
	var v uint32
	n := 0
	part := uint32(0)
	digits := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || part > 255 {
				return 0, 0, fmt.Errorf("bad part")
			}
			v = v<<8 | part
			n += 8
			part, digits = 0, 0
			continue
		}
		part = part*10 + uint32(s[i]-'0')
		digits++
		if digits > 3 {
			return 0, 0, fmt.Errorf("bad part")
		}
	}
	return v, n, nil
}

// mcode is `net A/len` or `net A mask M` for IPv4 (gen_mcode).
func (c *compiler) mcode(s1, s2 string, masklen uint32, q qual, pos int) (cond, error) {
	if !q.ok {
		return nil, c.errAt(pos, "syntax error: %q needs a qualifier such as net", s1)
	}
	n, nlen, err := parseHIDValue(s1)
	if err != nil {
		return nil, c.errAt(pos, "invalid IPv4 address '%s'", s1)
	}
	n <<= uint(32 - nlen)
	var m uint32
	if s2 != "" {
		mv, mlen, err := parseHIDValue(s2)
		if err != nil {
			return nil, c.errAt(pos, "invalid IPv4 address '%s'", s2)
		}
		m = mv << uint(32-mlen)
		if n&^m != 0 {
			return nil, c.errAt(pos, "non-network bits set in \"%s mask %s\"", s1, s2)
		}
	} else {
		if masklen > 32 {
			return nil, c.errAt(pos, "mask length must be <= 32")
		}
		if masklen != 0 {
			m = 0xffffffff << (32 - masklen)
		}
		if n&^m != 0 {
			return nil, c.errAt(pos, "non-network bits set in \"%s/%d\"", s1, masklen)
		}
	}
	if q.addr != aNet {
		return nil, c.errAt(pos, "Mask syntax for networks only")
	}
	return c.host4(n, m, q, pos)
}

// mcode6 is an IPv6 address with an optional prefix length (gen_mcode6).
func (c *compiler) mcode6(s string, masklen uint32, q qual, pos int) (cond, error) {
	if !q.ok {
		return nil, c.errAt(pos, "syntax error: %q needs a qualifier such as host or net", s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return nil, c.errAt(pos, "invalid IPv6 address '%s'", s)
	}
	if masklen > 128 {
		return nil, c.errAt(pos, "mask length must be <= 128")
	}
	var mask [16]byte
	for i := uint32(0); i < masklen; i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	addr := a.As16()
	for i := range addr {
		if addr[i]&^mask[i] != 0 {
			return nil, c.errAt(pos, "non-network bits set in \"%s/%d\"", s, masklen)
		}
	}
	switch q.addr {
	case aDefault, aHost:
		if masklen != 128 {
			return nil, c.errAt(pos, "Mask syntax for networks only")
		}
		fallthrough
	case aNet:
		return c.host6(addr, mask, q, pos)
	}
	return nil, c.errAt(pos, "invalid qualifier against IPv6 address")
}

// ecode is an Ethernet address (gen_ecode).
func (c *compiler) ecode(s string, q qual, pos int) (cond, error) {
	if !q.ok {
		return nil, c.errAt(pos, "syntax error: %q needs a qualifier such as ether host", s)
	}
	if (q.addr == aHost || q.addr == aDefault) && q.proto == pLink {
		return c.etherHost(parseEID(s), q.dir), nil
	}
	return nil, c.errAt(pos, "ethernet address used in non-ether expression")
}

var all16 = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// scode is a name: a host, port, port range or protocol (gen_scode).
func (c *compiler) scode(name string, q qual, pos int) (cond, error) {
	if !q.ok {
		return nil, c.errAt(pos, "syntax error: %q needs a qualifier such as host, net or port", name)
	}
	switch q.addr {
	case aNet:
		addr, ok := networks[name]
		if !ok || addr == 0 {
			return nil, c.errAt(pos, "unknown network '%s'", name)
		}
		// libpcap left-justifies the network number and masks only the
		// bytes that were zero-extended on the left.
		mask := uint32(0xffffffff)
		for addr != 0 && addr&0xff000000 == 0 {
			addr <<= 8
			mask <<= 8
		}
		return c.host4(addr, mask, q, pos)
	case aDefault, aHost:
		if q.proto == pLink {
			return nil, c.errAt(pos, "unknown ether host '%s'", name)
		}
		addrs, err := lookupHost(name)
		if err != nil || len(addrs) == 0 {
			return nil, c.errAt(pos, "unknown host '%s'", name)
		}
		var b cond
		for _, a := range addrs {
			var t cond
			var err error
			if a.Is4() || a.Is4In6() {
				if q.proto == pIP6 {
					continue
				}
				v4 := a.Unmap().As4()
				t, err = c.host4(uint32(v4[0])<<24|uint32(v4[1])<<16|uint32(v4[2])<<8|uint32(v4[3]), 0xffffffff, q, pos)
			} else {
				if q.proto == pIP {
					continue
				}
				t, err = c.host6(a.As16(), all16, q, pos)
			}
			if err != nil {
				return nil, err
			}
			b = or(b, t)
		}
		if b == nil {
			if q.proto == pDefault {
				return nil, c.errAt(pos, "unknown host '%s'", name)
			}
			return nil, c.errAt(pos, "unknown host '%s' for specified address family", name)
		}
		return b, nil
	case aPort:
		p, err := c.portProto(q, "port", pos)
		if err != nil {
			return nil, err
		}
		port, registered, ok := lookupPort(name)
		if !ok {
			return nil, c.errAt(pos, "unknown port '%s'", name)
		}
		proto, err := c.narrowPort(p, registered, "port '"+name+"'", pos)
		if err != nil {
			return nil, err
		}
		return c.ports(port, port, false, proto, q.dir), nil
	case aPortrange:
		p, err := c.portProto(q, "portrange", pos)
		if err != nil {
			return nil, err
		}
		lo, hi, registered, ok := lookupPortRange(name)
		if !ok {
			return nil, c.errAt(pos, "unknown port in range '%s'", name)
		}
		proto, err := c.narrowPort(p, registered, "port in range '"+name+"'", pos)
		if err != nil {
			return nil, err
		}
		if lo > 65535 || hi > 65535 {
			return nil, c.errAt(pos, "illegal port number %d > 65535", max(lo, hi))
		}
		return c.ports(lo, hi, true, proto, q.dir), nil
	case aProto:
		switch q.proto {
		case pDefault, pIP, pIP6:
			v, ok := ipProtocols[name]
			if !ok {
				return nil, c.errAt(pos, "unknown ip proto '%s'", name)
			}
			return c.genProto(v, q, pos)
		case pLink:
			v, ok := etherProtocols[name]
			if !ok {
				return nil, c.errAt(pos, "unknown ether proto '%s'", name)
			}
			return c.genProto(v, q, pos)
		}
		return nil, c.errAt(pos, "unknown protocol: %s", name)
	}
	return nil, c.errAt(pos, "syntax error")
}

// narrowPort reconciles the qualifier's protocol (want) with the protocols
// the service name is registered for (libpcap refuses `udp port http`).
func (c *compiler) narrowPort(want, registered int, what string, pos int) (int, error) {
	name := map[int]string{protoTCP: "tcp", protoUDP: "udp", protoSCTP: "sctp"}
	if want == protoAny {
		return registered, nil
	}
	if registered != protoAny && registered != want {
		return 0, c.errAt(pos, "%s is %s", what, name[registered])
	}
	return want, nil
}

// broadcast and multicast (gen_broadcast, gen_multicast). The netmask is
// unknown to us, as it is to `tcpdump -y EN10MB`; like tcpdump we then treat
// 0.0.0.0 and 255.255.255.255 as the IPv4 broadcast addresses.
func (c *compiler) broadcast(p pqual, pos int) (cond, error) {
	switch p {
	case pDefault, pLink:
		return c.bcmp(loadLinkHdr, 0, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), nil
	case pIP:
		b := or(mcmp(c.loadNet(16, 4), 0, 0xffffffff), mcmp(c.loadNet(16, 4), 0xffffffff, 0xffffffff))
		return and(c.linkType(etherIP), b), nil
	}
	return nil, c.errAt(pos, "only link-layer/IP broadcast filters supported")
}

func (c *compiler) multicast(p pqual, pos int) (cond, error) {
	switch p {
	case pDefault, pLink:
		return test(loadLinkHdr(0, 1), jmpJSET, 1), nil
	case pIP:
		return and(c.linkType(etherIP), test(c.loadNet(16, 1), jmpJGE, 224)), nil
	case pIP6:
		return and(c.linkType(etherIPv6), c.cmpNet(24, 1, 255)), nil
	}
	return nil, c.errAt(pos, "link-layer multicast filters supported only on ethernet/FDDI/token ring/ARCNET/802.11/ATM LANE/Fibre Channel")
}

// less is `less n`, len <= n (libpcap gen_less).
func (c *compiler) less(n uint32) cond { return not(c.lenTest(jmpJGT, n)) }

// greater is `greater n`, len >= n (libpcap gen_greater).
func (c *compiler) greater(n uint32) cond { return c.lenTest(jmpJGE, n) }

func (c *compiler) lenTest(op uint16, v uint32) cond {
	return test([]bpf.RawInstruction{ins(clsLD|szW|mdLEN, 0)}, op, v)
}

// direction matches the Linux packet type of a live socket.
func (c *compiler) direction(outbound bool) cond {
	const packetOutgoing = 4
	t := test([]bpf.RawInstruction{ins(clsLD|szH|mdABS, skfAdPktType)}, jmpJEQ, packetOutgoing)
	if outbound {
		return t
	}
	return not(t)
}

// vlan matches an 802.1Q/802.1ad tag, optionally with a VLAN id. On a live
// Linux socket the kernel removes the outer tag into metadata, so the
// first `vlan` checks SKF_AD_VLAN_TAG_PRESENT and, only when no tag was
// removed, an inline tag whose presence moves later offsets by 4 bytes
// (libpcap gen_vlan_bpf_extensions). Later `vlan`s look at inline tags.
func (c *compiler) vlan(id uint32, hasID bool, pos int) (cond, error) {
	if hasID && id > 0x0fff {
		return nil, c.errAt(pos, "VLAN tag %d greater than maximum %d", id, 0x0fff)
	}
	tpid := func(code []bpf.RawInstruction) cond {
		var b cond
		for _, t := range []uint32{0x8100, 0x88a8, 0x9100} {
			load := append(code[:len(code):len(code)], c.loadLinkType(0, 2)...)
			b = or(b, test(load, jmpJEQ, t))
			code = nil
		}
		return b
	}
	if c.vlanDepth == 0 {
		present := test([]bpf.RawInstruction{ins(clsLD|szB|mdABS, skfAdVlanTagPresent)}, jmpJEQ, 1)
		shift := []bpf.RawInstruction{ins(clsLD|szW|mdIMM, 4), ins(clsST, vlanReg)}
		b := or(present, tpid(shift))
		if hasID {
			meta := and(present, mcmp([]bpf.RawInstruction{ins(clsLD|szH|mdABS, skfAdVlanTag)}, id, 0x0fff))
			inline := and(not(present), mcmp(c.loadNet(0, 2), id, 0x0fff))
			b = and(b, or(meta, inline))
		}
		c.vlanVar = true
		c.vlanDepth++
		return b, nil
	}
	b := tpid(nil)
	if hasID {
		b = and(b, mcmp(c.loadNet(0, 2), id, 0x0fff))
	}
	c.vlanConst += 4
	c.vlanDepth++
	return b, nil
}

// byteOp is the old `byte N op V` shorthand for ether[N].
func (c *compiler) byteOp(idx uint32, op tokKind, v uint32) cond {
	if idx >= 1<<31 {
		return cAbort{}
	}
	load := loadLinkHdr(idx, 1)
	switch op {
	case tEq:
		return test(load, jmpJEQ, v)
	case tGt:
		return test(load, jmpJGT, v)
	}
	return not(test(load, jmpJGE, v)) // tLt
}
