package nft

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
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
			key = map[expr.MetaKey]string{expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyOIFNAME: "oifname", expr.MetaKeyNFPROTO: "nfproto", expr.MetaKeyL4PROTO: "l4proto"}[e.Key]
		case *expr.Ct:
			key = map[expr.CtKey]string{expr.CtKeySTATE: "ct state", expr.CtKeySTATUS: "ct status"}[e.Key]
		case *expr.Payload:
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
