package nft

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// render writes a rule in the words of `nft list ruleset`, for the
// expressions Spec uses; anything else renders as "?", so that a new
// expression cannot slip past the expectations below.
func render(r []expr.Any) string {
	var out []string
	var key string
	for _, e := range r {
		switch e := e.(type) {
		case *expr.Meta:
			if e.Register != 1 { // a concatenation's next part
				out = append(out, fmt.Sprintf("reg%d=l4proto", e.Register))
				continue
			}
			key = map[expr.MetaKey]string{expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyOIFNAME: "oifname", expr.MetaKeyNFPROTO: "nfproto", expr.MetaKeyL4PROTO: "l4proto", expr.MetaKeyPKTTYPE: "pkttype"}[e.Key]
		case *expr.Ct:
			key = map[expr.CtKey]string{expr.CtKeySTATE: "ct state", expr.CtKeySTATUS: "ct status"}[e.Key]
		case *expr.Payload:
			if e.DestRegister != 1 {
				out = append(out, fmt.Sprintf("reg%d=@th,%d,%d", e.DestRegister, e.Offset*8, e.Len*8))
				continue
			}
			base := map[expr.PayloadBase]string{expr.PayloadBaseNetworkHeader: "nh", expr.PayloadBaseTransportHeader: "th"}[e.Base]
			key = fmt.Sprintf("@%s,%d,%d", base, e.Offset*8, e.Len*8)
		case *expr.Fib:
			key = "?"
			if e.ResultADDRTYPE && e.FlagDADDR && !e.FlagIIF && !e.FlagOIF {
				key = "fib daddr type"
			}
		case *expr.Immediate:
			out = append(out, fmt.Sprintf("reg%d=%x", e.Register, e.Data))
		case *expr.NAT:
			out = append(out, fmt.Sprintf("dnat%d reg%d:reg%d specified=%v", e.Family, e.RegAddrMin, e.RegProtoMin, e.Specified))
			if e.Type != expr.NATTypeDestNAT {
				out = append(out, "?")
			}
		case *expr.Bitwise:
			key += fmt.Sprintf(" & %x", e.Mask)
		case *expr.Cmp:
			op := map[expr.CmpOp]string{expr.CmpOpEq: "", expr.CmpOpNeq: "!= "}[e.Op]
			v := fmt.Sprintf("%x", e.Data)
			if strings.HasSuffix(key, "ifname") {
				v = `"` + string(bytes.TrimRight(e.Data, "\x00")) + `"`
			}
			out = append(out, key+" "+op+v)
		case *expr.Verdict:
			out = append(out, map[expr.VerdictKind]string{expr.VerdictAccept: "accept", expr.VerdictDrop: "drop"}[e.Kind])
		case *expr.Masq:
			out = append(out, "masquerade")
		case *expr.Lookup:
			out = append(out, fmt.Sprintf("%s reg%d @%s", key, e.SourceRegister, e.SetName))
		case *expr.Range:
			op := map[expr.CmpOp]string{expr.CmpOpEq: "in", expr.CmpOpNeq: "not in"}[e.Op]
			out = append(out, fmt.Sprintf("%s %s %x-%x", key, op, e.FromData, e.ToData))
		case *expr.Reject:
			out = append(out, fmt.Sprintf("reject %d/%d", e.Type, e.Code))
		default:
			out = append(out, "?")
		}
	}
	return strings.Join(out, " ")
}

func TestChainsSpec(t *testing.T) {
	s := Spec{Subnet: netip.MustParsePrefix("10.213.0.8/31"), Subnet6: netip.MustParsePrefix("fd6e:7374:7261:4::/64"), Uplink: "eth0", Veth: "nsnabcx1"}
	cs, err := s.Chains()
	if err != nil {
		t.Fatal(err)
	}
	est := fmt.Sprintf("ct state & %x != 00000000", binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED))
	want := map[string][]string{
		"postrouting": {
			`nfproto 02 @nh,96,32 & fffffffe 0ad50008 oifname "eth0" masquerade`,
			`nfproto 0a @nh,64,128 & ffffffffffffffff0000000000000000 fd6e7374726100040000000000000000 oifname "eth0" masquerade`,
		},
		// Only what the program started passes, and only via the uplink.
		"forward": {
			`oifname "nsnabcx1" ` + est + ` accept`,
			`oifname "nsnabcx1" drop`,
			`iifname "nsnabcx1" oifname "eth0" accept`,
			`iifname "nsnabcx1" drop`,
		},
	}
	if len(cs) != 2 || cs[0].Type != "nat" || cs[1].Type != "filter" {
		t.Fatalf("chains = %+v", cs)
	}
	for _, c := range cs {
		var got []string
		for _, r := range c.Rules {
			got = append(got, render(r))
		}
		if strings.Join(got, "\n") != strings.Join(want[c.Name], "\n") {
			t.Errorf("chain %s:\n%s\nwant:\n%s", c.Name, strings.Join(got, "\n"), strings.Join(want[c.Name], "\n"))
		}
	}
	var accepts []string
	for _, r := range ForwardAccepts("nsnabcx1", "eth0") {
		accepts = append(accepts, render(r))
	}
	if got, w := strings.Join(accepts, "\n"), want["forward"][0]+"\n"+want["forward"][2]; got != w {
		t.Errorf("ForwardAccepts:\n%s\nwant:\n%s", got, w)
	}
	for _, bad := range []Spec{
		{Subnet: netip.MustParsePrefix("fd00::/64"), Uplink: "a", Veth: "b"},
		{Subnet: netip.MustParsePrefix("10.0.0.0/31"), Uplink: "", Veth: "b"},
		{Subnet: netip.MustParsePrefix("10.0.0.0/31"), Uplink: "a", Veth: "a-name-longer-than-15"},
	} {
		if _, err := bad.Chains(); err == nil {
			t.Errorf("Chains(%+v) accepted", bad)
		}
	}
}

// TestEgressChainsSpec: an enforced policy replaces the uplink accept of
// what comes from the veth by its address rules, lookups in the sets of
// DNS grants and rejects; the ip and ip6 tables of old kernels get the
// family's own ICMP code.
func TestEgressChainsSpec(t *testing.T) {
	s := Spec{Subnet: netip.MustParsePrefix("10.213.0.8/31"), Subnet6: netip.MustParsePrefix("fd6e:7374:7261:4::/64"), Uplink: "eth0", Veth: "nsnabcx1",
		Egress: &Egress{Allow: []EgressRule{
			{Prefix: netip.MustParsePrefix("10.0.0.0/8")},
			{Prefix: netip.MustParsePrefix("2001:db8::1/128"), Port: 443, Proto: TCP},
			{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Proto: UDP},
		}, Relay: netip.MustParseAddrPort("10.213.0.8:53")}}
	cs, err := s.Chains()
	if err != nil {
		t.Fatal(err)
	}
	est := fmt.Sprintf("ct state & %x != 00000000", binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED))
	io := `iifname "nsnabcx1" oifname "eth0" `
	want := []string{
		`oifname "nsnabcx1" ` + est + ` accept`,
		`oifname "nsnabcx1" drop`,
		`iifname "nsnabcx1" ` + est + ` accept`,
		"nfproto 02 " + io + "@nh,128,32 & ff000000 0a000000 accept",
		"nfproto 0a " + io + "@nh,192,128 & ffffffffffffffffffffffffffffffff 20010db8000000000000000000000001 l4proto 06 @th,16,16 01bb accept",
		"nfproto 02 " + io + "@nh,128,32 & ffffff00 c0000200 l4proto 11 accept",
		"nfproto 02 " + io + "@nh,128,32 reg1 @allow4 accept",
		"nfproto 02 " + io + "reg9=l4proto @nh,128,32 reg1 @allow4t accept",
		"nfproto 02 " + io + "reg9=l4proto reg10=@th,16,16 @nh,128,32 reg1 @allow4p accept",
		"nfproto 0a " + io + "@nh,192,128 reg1 @allow6 accept",
		"nfproto 0a " + io + "reg12=l4proto @nh,192,128 reg1 @allow6t accept",
		"nfproto 0a " + io + "reg12=l4proto reg13=@th,16,16 @nh,192,128 reg1 @allow6p accept",
		`iifname "nsnabcx1" l4proto 06 reject 1/0`,
		`iifname "nsnabcx1" reject 2/3`,
	}
	var got []string
	for _, r := range cs[1].Rules {
		got = append(got, render(r))
	}
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Errorf("forward chain:\n%s\nwant:\n%s", g, w)
	}
	// The input chain: the same rules for what the program sends to the
	// host itself, with no oifname, after the relay and what IPv6 needs.
	in := cs[len(cs)-1]
	if in.Name != "input" || in.Hook != unix.NF_INET_LOCAL_IN {
		t.Fatalf("last chain %s hook %d, want input", in.Name, in.Hook)
	}
	i := `iifname "nsnabcx1" `
	wantIn := []string{
		i + est + ` accept`,
		i + `pkttype != 00 accept`,
		i + `l4proto 3a @th,0,8 in 85-89 accept`,
		"nfproto 02 " + i + "@nh,128,32 & ffffffff 0ad50008 l4proto 11 @th,16,16 0035 accept",
		"nfproto 02 " + i + "@nh,128,32 & ffffffff 0ad50008 l4proto 06 @th,16,16 0035 accept",
	}
	for _, w := range want[3:] {
		wantIn = append(wantIn, strings.Replace(w, io, i, 1))
	}
	got = nil
	for _, r := range in.Rules {
		got = append(got, render(r))
	}
	if g, w := strings.Join(got, "\n"), strings.Join(wantIn, "\n"); g != w {
		t.Errorf("input chain:\n%s\nwant:\n%s", g, w)
	}
	v4, err := s.familyChains(2, cs)
	if err != nil {
		t.Fatal(err)
	}
	if r := render(v4[1].Rules[len(v4[1].Rules)-1]); r != `iifname "nsnabcx1" reject 0/13` {
		t.Errorf("ip table's last rule %s, want ICMP admin-prohibited (13)", r)
	}
	for _, bad := range []EgressRule{{}, {Prefix: netip.MustParsePrefix("10.0.0.0/8"), Port: 53}} {
		s.Egress = &Egress{Allow: []EgressRule{bad}}
		if _, err := s.Chains(); err == nil {
			t.Errorf("egress rule %+v accepted", bad)
		}
	}
}
