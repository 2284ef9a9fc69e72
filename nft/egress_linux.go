package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nft's data type numbers (nftables src/datatype.h), for NFTA_SET_KEY_TYPE:
// the kernel ignores them, nft list uses them to print the set's type.
// A concatenation's type is its types' numbers, 6 bits each.
const (
	typeIPv4Addr    = 7
	typeIPv6Addr    = 8
	typeInetProto   = 12
	typeInetService = 13
	typeBits        = 6
)

// setSpec is one set of the run's table.
type setSpec struct {
	name    string
	id      uint32
	keyType uint32
	keyLen  uint32
}

// egressSets are the sets of the enforced policy's DNS grants.
func egressSets() []setSpec {
	concat := func(ts ...uint32) uint32 {
		var v uint32
		for _, t := range ts {
			v = v<<typeBits | t
		}
		return v
	}
	return []setSpec{
		{setAddr4, 1, typeIPv4Addr, 4},
		{setAddr6, 2, typeIPv6Addr, 16},
		{setAddrProto4, 3, concat(typeIPv4Addr, typeInetProto), 8},
		{setAddrProto6, 4, concat(typeIPv6Addr, typeInetProto), 20},
		{setAddrPort4, 5, concat(typeIPv4Addr, typeInetProto, typeInetService), 12},
		{setAddrPort6, 6, concat(typeIPv6Addr, typeInetProto, typeInetService), 24},
	}
}

// Registers of a lookup key. Register 1 (NFT_REG_1) is 16 bytes, the 32-bit
// registers NFT_REG32_00..03; a concatenation continues in the next 32-bit
// registers (nft_parse_register), each component padded to 4 bytes.
const (
	reg32After4 = unix.NFT_REG32_01 // after an IPv4 address in register 1
	reg32After6 = unix.NFT_REG32_04 // after an IPv6 address in register 1
)

// egressRules are the enforced policy's part of the forward chain, for what
// comes in from the veth, after the run's usual rules for what goes out to
// it:
//
//	iifname VETH ct state established,related accept
//	(egressAllows, each also matching oifname UPLINK)
//	(egressRejects)
func egressRules(veth, uplink string, e *Egress) ([][]expr.Any, error) {
	in := ifname(expr.MetaKeyIIFNAME, veth)
	out := append(append([]expr.Any{}, in...), ifname(expr.MetaKeyOIFNAME, uplink)...)
	rs := [][]expr.Any{append(append(append([]expr.Any{}, in...), ctEstablished()...), accept())}
	allows, err := egressAllows(out, e)
	if err != nil {
		return nil, err
	}
	return append(append(rs, allows...), egressRejects(in)...), nil
}

// egressInputRules are the enforced policy's input chain: what the program
// sends to the host itself (its gateway, the host's other addresses) meets
// the same rules as what it sends through it, but for the DNS relay, the
// program's DNS server, and the neighbour discovery IPv6 needs:
//
//	iifname VETH ct state established,related accept
//	iifname VETH meta pkttype != host accept            (broadcast, multicast: no connection)
//	iifname VETH meta l4proto ipv6-icmp icmpv6 type 133-137 accept
//	meta nfproto ipv4 iifname VETH ip daddr RELAY meta l4proto udp|tcp th dport PORT accept
//	(egressAllows)
//	(egressRejects)
func egressInputRules(veth string, e *Egress) ([][]expr.Any, error) {
	in := ifname(expr.MetaKeyIIFNAME, veth)
	with := func(m ...expr.Any) []expr.Any { return append(append([]expr.Any{}, in...), m...) }
	rs := [][]expr.Any{
		append(with(ctEstablished()...), accept()),
		with(&expr.Meta{Key: expr.MetaKeyPKTTYPE, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.PACKET_HOST}}, accept()),
		append(with(l4proto(icmpv6)...),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{133}, ToData: []byte{137}},
			accept()),
	}
	if r := e.Relay; r.IsValid() {
		for _, p := range []Proto{UDP, TCP} {
			m := append(nfprotoIs(r.Addr()), in...)
			m = append(m, daddrIn(netip.PrefixFrom(r.Addr(), r.Addr().BitLen()))...)
			m = append(m, l4proto(p)...)
			m = append(m, dport(r.Port())...)
			rs = append(rs, append(m, accept()))
		}
	}
	allows, err := egressAllows(in, e)
	if err != nil {
		return nil, err
	}
	return append(append(rs, allows...), egressRejects(in)...), nil
}

// icmpv6 is IPPROTO_ICMPV6.
const icmpv6 Proto = 58

// egressAllows accept what the policy allows of the packets match
// matches: the address rules, then the addresses DNS answers granted.
//
//	meta nfproto ipv4 MATCH ip daddr & MASK == NET [meta l4proto P [th dport N]] accept   (each rule)
//	meta nfproto ipv4 MATCH ip daddr @allow4 accept
//	meta nfproto ipv4 MATCH ip daddr . meta l4proto @allow4t accept
//	meta nfproto ipv4 MATCH ip daddr . meta l4proto . th dport @allow4p accept
//	(the same for ipv6)
func egressAllows(match []expr.Any, e *Egress) ([][]expr.Any, error) {
	var rs [][]expr.Any
	for _, r := range e.Allow {
		if !r.Prefix.IsValid() || r.Port != 0 && r.Proto == 0 || r.Proto != 0 && r.Proto != TCP && r.Proto != UDP {
			return nil, fmt.Errorf("egress rule %v:%d/%v: a prefix, and a port only with TCP or UDP", r.Prefix, r.Port, r.Proto)
		}
		p := r.Prefix.Masked()
		a := p.Addr().Unmap()
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(a, max(p.Bits()-96, 0))
		}
		m := append(nfprotoIs(a), match...)
		m = append(m, daddrIn(netip.PrefixFrom(a, p.Bits()))...)
		if r.Proto != 0 {
			m = append(m, l4proto(r.Proto)...)
		}
		if r.Port != 0 {
			m = append(m, dport(r.Port)...)
		}
		rs = append(rs, append(m, accept()))
	}
	for _, fam := range []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
		off, l, next, sets := uint32(16), uint32(4), uint32(reg32After4), []string{setAddr4, setAddrProto4, setAddrPort4}
		if fam.Is6() {
			off, l, next, sets = 24, 16, reg32After6, []string{setAddr6, setAddrProto6, setAddrPort6}
		}
		for i, set := range sets {
			m := append(nfprotoIs(fam), match...)
			m = append(m, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l})
			if i >= 1 {
				m = append(m, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: next})
			}
			if i >= 2 {
				m = append(m, &expr.Payload{DestRegister: next + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
			}
			rs = append(rs, append(m, &expr.Lookup{SourceRegister: 1, SetName: set, SetID: setID(set)}, accept()))
		}
	}
	return rs, nil
}

// egressRejects refuse the rest of what in matches at once:
//
//	MATCH meta l4proto tcp reject with tcp reset
//	MATCH reject with icmpx admin-prohibited
func egressRejects(in []expr.Any) [][]expr.Any {
	return [][]expr.Any{
		append(append(append([]expr.Any{}, in...), l4proto(TCP)...), &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}),
		append(append([]expr.Any{}, in...), &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}),
	}
}

// dport matches th dport port (TCP or UDP, matched before).
func dport(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
	}
}

// nfprotoIs matches meta nfproto of a's family; first in a rule, so that
// familyChains drops it for ip and ip6 tables.
func nfprotoIs(a netip.Addr) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto(a)}},
	}
}

func setID(name string) uint32 {
	for _, s := range egressSets() {
		if s.name == name {
			return s.id
		}
	}
	return 0
}

// daddrIn matches ip[6] daddr in prefix p.
func daddrIn(p netip.Prefix) []expr.Any {
	off, l := uint32(16), uint32(4)
	if p.Addr().Is6() {
		off, l = 24, 16
	}
	mask := make([]byte, l)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: l, Mask: mask, Xor: make([]byte, l)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

// l4proto matches meta l4proto p.
func l4proto(p Proto) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(p)}},
	}
}

// setMessages are NEWSET messages for sets of table name, family fam:
// hash sets whose elements time out (NFT_SET_TIMEOUT).
func setMessages(fam byte, table string, sets []setSpec) ([]netlink.Message, error) {
	var msgs []netlink.Message
	for _, s := range sets {
		b, err := netlink.MarshalAttributes([]netlink.Attribute{
			{Type: unix.NFTA_SET_TABLE, Data: cstr(table)},
			{Type: unix.NFTA_SET_NAME, Data: cstr(s.name)},
			{Type: unix.NFTA_SET_FLAGS, Data: binary.BigEndian.AppendUint32(nil, unix.NFT_SET_TIMEOUT)},
			{Type: unix.NFTA_SET_KEY_TYPE, Data: binary.BigEndian.AppendUint32(nil, s.keyType)},
			{Type: unix.NFTA_SET_KEY_LEN, Data: binary.BigEndian.AppendUint32(nil, s.keyLen)},
			{Type: unix.NFTA_SET_ID, Data: binary.BigEndian.AppendUint32(nil, s.id)},
		})
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, nftMessage(unix.NFT_MSG_NEWSET, netlink.Request|netlink.Create|netlink.Excl, fam, b))
	}
	return msgs, nil
}

func nftMessage(typ int, flags netlink.HeaderFlags, fam byte, attrs []byte) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), Flags: flags},
		Data:   append([]byte{fam, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
}

// grantKey returns the set and the key of an element allowing a on port
// over proto (0: any).
func grantKey(a netip.Addr, port uint16, proto Proto) (string, []byte, error) {
	a = a.Unmap()
	key := a.AsSlice()
	v6 := a.Is6()
	switch {
	case !a.IsValid():
		return "", nil, errors.New("no address")
	case port == 0 && proto == 0:
		if v6 {
			return setAddr6, key, nil
		}
		return setAddr4, key, nil
	case proto != TCP && proto != UDP:
		return "", nil, fmt.Errorf("grant %s:%d/%v: a port needs TCP or UDP", a, port, proto)
	}
	key = append(key, byte(proto), 0, 0, 0)
	if port == 0 {
		if v6 {
			return setAddrProto6, key, nil
		}
		return setAddrProto4, key, nil
	}
	key = append(key, byte(port>>8), byte(port), 0, 0)
	if v6 {
		return setAddrPort6, key, nil
	}
	return setAddrPort4, key, nil
}

// Grant lets the program reach a on port over proto (0: any) through the
// enforced policy for ttl (at least a millisecond): it adds an element to
// the run's set of DNS grants. With extend, the element is there already
// and gets the new timeout (deleted and added again in one transaction,
// as kernels before 6.10 do not update an element's timeout). It is safe
// for concurrent use.
func (t *Table) Grant(a netip.Addr, port uint16, proto Proto, ttl time.Duration, extend bool) error {
	if !t.egress {
		return errors.New("grant: the table has no egress policy")
	}
	set, key, err := grantKey(a, port, proto)
	if err != nil {
		return err
	}
	ms := max(uint64(ttl/time.Millisecond), 1)
	var msgs []netlink.Message
	for _, tb := range t.tables {
		if tb.family == unix.NFPROTO_IPV4 && a.Unmap().Is6() || tb.family == unix.NFPROTO_IPV6 && a.Unmap().Is4() {
			continue
		}
		elem := func(timeout bool) ([]byte, error) {
			k, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_DATA_VALUE, Data: key}})
			if err != nil {
				return nil, err
			}
			attrs := []netlink.Attribute{{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_KEY, Data: k}}
			if timeout {
				attrs = append(attrs, netlink.Attribute{Type: unix.NFTA_SET_ELEM_TIMEOUT, Data: binary.BigEndian.AppendUint64(nil, ms)})
			}
			e, err := netlink.MarshalAttributes(attrs)
			if err != nil {
				return nil, err
			}
			list, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: e}})
			if err != nil {
				return nil, err
			}
			return netlink.MarshalAttributes([]netlink.Attribute{
				{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: cstr(tb.name)},
				{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: cstr(set)},
				{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_LIST_ELEMENTS, Data: list},
			})
		}
		if extend {
			b, err := elem(false)
			if err != nil {
				return err
			}
			msgs = append(msgs, nftMessage(unix.NFT_MSG_DELSETELEM, netlink.Request, tb.family, b))
		}
		b, err := elem(true)
		if err != nil {
			return err
		}
		msgs = append(msgs, nftMessage(unix.NFT_MSG_NEWSETELEM, netlink.Request|netlink.Create, tb.family, b))
	}
	if len(msgs) == 0 {
		return nil
	}
	t.mu.Lock()
	err = send(t.conn, msgs)
	t.mu.Unlock()
	if extend && errors.Is(err, unix.ENOENT) {
		// It timed out in the meantime: add it anew.
		return t.Grant(a, port, proto, ttl, false)
	}
	if err != nil {
		return fmt.Errorf("allow %s in nftables set %s: %w", a, set, err)
	}
	return nil
}
