package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// ipsDstNAT is IPS_DST_NAT (linux/netfilter/nf_conntrack_common.h): the
// connection's destination was rewritten (DNAT).
const ipsDstNAT = 1 << 5

// rtnLocal is RTN_LOCAL (linux/rtnetlink.h), the address type of the
// host's own addresses.
const rtnLocal = 2

// publishChains are the nat chains of the published ports: prerouting
// for what arrives from outside, output for what the host itself sends to
// its own addresses. Each port gives, per family the run has (v4 shown):
//
//	prerouting: meta nfproto ipv4 iifname != VETH fib daddr type local meta l4proto tcp th dport HOSTPORT dnat ip to PEER:PORT
//	output:     meta nfproto ipv4 fib daddr type local ip daddr & 255.0.0.0 != 127.0.0.0 meta l4proto tcp th dport HOSTPORT dnat ip to PEER:PORT
//
// with "ip daddr HOSTADDR" instead of the fib match when the port names a
// host address. Loopback is left out: a packet from 127.0.0.1 cannot leave
// by the veth without route_localnet, a host-wide switch that is not ours
// to flip, so what goes to loopback reaches nsntrace's own listener
// instead. Without ports, no chain.
func (s Spec) publishChains() ([]ChainSpec, error) {
	if len(s.Publish) == 0 {
		return nil, nil
	}
	var pre, out [][]expr.Any
	for _, p := range s.Publish {
		if p.Proto != TCP && p.Proto != UDP || p.HostPort == 0 || p.Port == 0 {
			return nil, fmt.Errorf("published port %s: protocol and ports must be set", p)
		}
		peers := []netip.Addr{s.Peer, s.Peer6}
		if p.HostAddr.IsValid() {
			if p.HostAddr.IsLoopback() {
				continue // nsntrace's listener forwards it
			}
			peers = []netip.Addr{s.Peer}
			if p.HostAddr.Is6() {
				peers = []netip.Addr{s.Peer6}
			}
			if !peers[0].IsValid() {
				return nil, fmt.Errorf("published port %s: the program has no address of that family", p)
			}
		}
		for _, peer := range peers {
			if !peer.IsValid() {
				continue
			}
			// Not what the program itself sends to the host: DNAT back
			// into the veth would answer it from the wrong side; it
			// reaches nsntrace's listener instead.
			notOwn := ifname(expr.MetaKeyIIFNAME, s.Veth)
			notOwn[1].(*expr.Cmp).Op = expr.CmpOpNeq
			if p.HostAddr.IsValid() {
				pre = append(pre, dnatRule(nfproto(peer), append(notOwn, daddr(p.HostAddr)...), p, peer))
				out = append(out, dnatRule(nfproto(peer), daddr(p.HostAddr), p, peer))
				continue
			}
			pre = append(pre, dnatRule(nfproto(peer), append(notOwn, fibLocal()...), p, peer))
			lo := netip.MustParsePrefix("127.0.0.0/8")
			if peer.Is6() {
				lo = netip.MustParsePrefix("::1/128")
			}
			out = append(out, dnatRule(nfproto(peer), append(fibLocal(), notIn(lo)...), p, peer))
		}
	}
	return []ChainSpec{
		{Name: "prerouting", Type: "nat", Hook: unix.NF_INET_PRE_ROUTING, Priority: -100, Rules: pre},
		{Name: "output", Type: "nat", Hook: unix.NF_INET_LOCAL_OUT, Priority: -100, Rules: out},
	}, nil
}

// PublishAccepts are the forward rules that let new connections to the
// published ports into the veth, once DNAT sent them there:
// oifname VETH meta l4proto tcp th dport PORT ct status dnat accept.
// Only connections someone's DNAT made pass: a route to the program's
// subnet alone opens nothing.
func PublishAccepts(veth string, ports []Port) [][]expr.Any {
	var rs [][]expr.Any
	seen := map[[2]uint16]bool{}
	for _, p := range ports {
		k := [2]uint16{uint16(p.Proto), p.Port}
		if seen[k] {
			continue
		}
		seen[k] = true
		r := ifname(expr.MetaKeyOIFNAME, veth)
		r = append(r, l4port(p.Proto, p.Port)...)
		r = append(r,
			&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
			// ct status is the conntrack's host-endian u32 (nft_ct_get_eval).
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
			accept())
		rs = append(rs, r)
	}
	return rs
}

func nfproto(a netip.Addr) byte {
	if a.Is4() {
		return unix.NFPROTO_IPV4
	}
	return unix.NFPROTO_IPV6
}

// dnatRule: meta nfproto FAM MATCH meta l4proto P th dport HOSTPORT dnat to PEER:PORT.
// The first two expressions match the protocol (inet tables only;
// familyChains drops them).
func dnatRule(fam byte, match []expr.Any, p Port, peer netip.Addr) []expr.Any {
	r := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fam}},
	}
	r = append(r, match...)
	r = append(r, l4port(p.Proto, p.HostPort)...)
	return append(r,
		&expr.Immediate{Register: 1, Data: peer.AsSlice()},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, p.Port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(fam), RegAddrMin: 1, RegProtoMin: 2, Specified: true})
}

// l4port: meta l4proto P th dport PORT.
func l4port(p Proto, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(p)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
	}
}

// fibLocal: fib daddr type local. The type is a host-endian u32
// (nft_fib4_eval_type stores inet_dev_addr_type's result); without iif
// or oif flags the kernel takes it in prerouting and output alike
// (nft_fib_validate).
func fibLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, ResultADDRTYPE: true, FlagDADDR: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(rtnLocal)},
	}
}

// daddr: ip[6] daddr A.
func daddr(a netip.Addr) []expr.Any {
	return prefixMatch(netip.PrefixFrom(a, a.BitLen()), false)
}

// notIn: ip[6] daddr != PREFIX.
func notIn(p netip.Prefix) []expr.Any { return prefixMatch(p, true) }

func prefixMatch(p netip.Prefix, not bool) []expr.Any {
	p = p.Masked()
	off, l := uint32(16), uint32(4)
	if p.Addr().Is6() {
		off, l = 24, 16
	}
	op := expr.CmpOpEq
	if not {
		op = expr.CmpOpNeq
	}
	r := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l}}
	if p.Bits() < p.Addr().BitLen() {
		mask := make([]byte, l)
		for i := 0; i < p.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		r = append(r, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: l, Mask: mask, Xor: make([]byte, l)})
	}
	return append(r, &expr.Cmp{Op: op, Register: 1, Data: p.Addr().AsSlice()})
}
