package nft

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// ChainSpec is one base chain of the run's table.
type ChainSpec struct {
	Name     string
	Type     string // "nat" or "filter"
	Hook     uint32 // NF_INET_*
	Priority int32
	Rules    [][]expr.Any
}

// Chains returns the run's rule set as a value: what Install sends to the
// kernel, buildable and comparable without privileges.
func (s Spec) Chains() ([]ChainSpec, error) {
	if !s.Subnet.Addr().Is4() {
		return nil, fmt.Errorf("subnet %s is not IPv4", s.Subnet)
	}
	if s.Subnet6.IsValid() && !s.Subnet6.Addr().Is6() {
		return nil, fmt.Errorf("subnet %s is not IPv6", s.Subnet6)
	}
	if s.Uplink == "" || s.Veth == "" || len(s.Uplink) > 15 || len(s.Veth) > 15 {
		return nil, fmt.Errorf("uplink %q and veth %q must be interface names", s.Uplink, s.Veth)
	}
	post := [][]expr.Any{masquerade(s.Subnet, s.Uplink)}
	if s.Subnet6.IsValid() {
		post = append(post, masquerade(s.Subnet6, s.Uplink))
	}
	pub, err := s.publishChains()
	if err != nil {
		return nil, err
	}
	fwd := forwardRules(s.Veth, s.Uplink, s.Publish)
	if s.Egress != nil {
		// The enforced policy replaces the uplink accept and the final
		// drop for what comes from the veth.
		eg, err := egressRules(s.Veth, s.Uplink, s.Egress)
		if err != nil {
			return nil, err
		}
		fwd = append(fwd[:len(fwd)-2], eg...)
	}
	chains := append(pub,
		ChainSpec{Name: "postrouting", Type: "nat", Hook: unix.NF_INET_POST_ROUTING, Priority: 100, Rules: post},
		ChainSpec{Name: "forward", Type: "filter", Hook: unix.NF_INET_FORWARD, Priority: 0, Rules: fwd},
	)
	if s.Egress != nil {
		in, err := egressInputRules(s.Veth, s.Egress)
		if err != nil {
			return nil, err
		}
		chains = append(chains, ChainSpec{Name: "input", Type: "filter", Hook: unix.NF_INET_LOCAL_IN, Priority: 0, Rules: in})
	}
	return chains, nil
}

// sets are the sets of the run's table.
func (s Spec) sets() []setSpec {
	if s.Egress == nil {
		return nil
	}
	return egressSets()
}

// familyChains returns the chains of the run's table of family fam: all of
// chains for inet; for ip and ip6 (kernels before 5.2, which have no nat
// chains in inet tables), the rules that match that family's protocol
// (masquerade of its subnet, DNAT to its address) and those for any
// protocol (forward).
func (s Spec) familyChains(fam byte, chains []ChainSpec) ([]ChainSpec, error) {
	switch fam {
	case unix.NFPROTO_INET:
		return chains, nil
	case unix.NFPROTO_IPV4, unix.NFPROTO_IPV6:
	default:
		return nil, fmt.Errorf("table family %d", fam)
	}
	out := make([]ChainSpec, len(chains))
	copy(out, chains)
	for i, c := range out {
		out[i].Rules = nil
		for _, r := range c.Rules {
			p, ok := ruleNFProto(r)
			switch {
			case !ok:
				out[i].Rules = append(out[i].Rules, familyReject(fam, r))
			case p == fam:
				// The table's family already says which protocol it is:
				// no meta nfproto match (which also confuses nft list).
				out[i].Rules = append(out[i].Rules, r[2:])
			}
		}
	}
	return out, nil
}

// familyReject returns r for a table of family fam (ip or ip6): there
// reject is nft_reject_ipv4 or _ipv6, which ignores the family-neutral
// icmpx type (nft_reject_ipv4_eval knows only ICMP_UNREACH and TCP_RST),
// so an icmpx reject becomes that family's ICMP code for it.
func familyReject(fam byte, r []expr.Any) []expr.Any {
	last, ok := r[len(r)-1].(*expr.Reject)
	if !ok || last.Type != unix.NFT_REJECT_ICMPX_UNREACH || last.Code != unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED {
		return r
	}
	code := uint8(13) // ICMP_PKT_FILTERED
	if fam == unix.NFPROTO_IPV6 {
		code = 1 // ICMPV6_ADM_PROHIBITED
	}
	out := append([]expr.Any{}, r[:len(r)-1]...)
	return append(out, &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: code})
}

// ruleNFProto returns the protocol a rule starts by matching (meta
// nfproto P), if it does.
func ruleNFProto(r []expr.Any) (byte, bool) {
	if len(r) < 2 {
		return 0, false
	}
	m, ok := r[0].(*expr.Meta)
	if !ok || m.Key != expr.MetaKeyNFPROTO {
		return 0, false
	}
	c, ok := r[1].(*expr.Cmp)
	if !ok || len(c.Data) != 1 {
		return 0, false
	}
	return c.Data[0], true
}

// forwardRules let through the forward path only what the program's
// namespace started, and only to and from the uplink:
//
//	oifname VETH ct state established,related accept
//	oifname VETH meta l4proto P th dport PORT ct status dnat accept  (each published port)
//	oifname VETH drop
//	iifname VETH oifname UPLINK accept
//	iifname VETH drop
//
// So nobody on the uplink reaches a server the program runs (even with a
// route to the run's subnet) but through a published port, and concurrent runs, whose veths are
// directly connected on the host, cannot reach each other. The chain's
// policy stays accept: traffic that is not the run's is not ours to judge.
func forwardRules(veth, uplink string, ports []Port) [][]expr.Any {
	acc := ForwardAccepts(veth, uplink)
	rs := append([][]expr.Any{acc[0]}, PublishAccepts(veth, ports)...)
	return append(rs,
		append(ifname(expr.MetaKeyOIFNAME, veth), drop()),
		acc[1],
		append(ifname(expr.MetaKeyIIFNAME, veth), drop()),
	)
}

// ForwardAccepts are the rules that let the run's own traffic through a
// forward chain that drops by default (another table's):
// oifname VETH ct state established,related accept, and
// iifname VETH oifname UPLINK accept.
func ForwardAccepts(veth, uplink string) [][]expr.Any {
	in := ifname(expr.MetaKeyOIFNAME, veth)
	in = append(in, ctEstablished()...)
	out := ifname(expr.MetaKeyIIFNAME, veth)
	out = append(out, ifname(expr.MetaKeyOIFNAME, uplink)...)
	return [][]expr.Any{append(in, accept()), append(out, accept())}
}

func accept() expr.Any { return &expr.Verdict{Kind: expr.VerdictAccept} }
func drop() expr.Any   { return &expr.Verdict{Kind: expr.VerdictDrop} }

// ctEstablished matches ct state established,related. The state is a
// host-endian u32 bit set (nft_ct_get_eval stores ctinfo bits in a
// register), so the mask is native-endian.
func ctEstablished() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ifname matches the input or output interface name exactly.
func ifname(key expr.MetaKey, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

// masquerade: ip[6] saddr SUBNET oifname UPLINK masquerade.
func masquerade(sub netip.Prefix, uplink string) []expr.Any {
	sub = sub.Masked()
	proto, off, l := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if sub.Addr().Is6() {
		proto, off, l = unix.NFPROTO_IPV6, 8, 16
	}
	mask := make([]byte, l)
	for i := 0; i < sub.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	// The first two expressions match the protocol (inet tables only;
	// familyChains drops them).
	r := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: l, Mask: mask, Xor: make([]byte, l)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: sub.Addr().AsSlice()},
	}
	r = append(r, ifname(expr.MetaKeyOIFNAME, uplink)...)
	return append(r, &expr.Masq{})
}
