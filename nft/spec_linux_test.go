package nft

import (
	"net/netip"
	"testing"

	"github.com/google/nftables/expr"
)

func TestChainsSpec(t *testing.T) {
	s := Spec{Subnet: netip.MustParsePrefix("10.213.0.8/31"), Subnet6: netip.MustParsePrefix("fd6e:7374:7261:4::/64"), Uplink: "eth0", Veth: "nsnabcx1"}
	cs, err := s.Chains()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Type != "nat" || len(cs[0].Rules) != 2 || cs[1].Type != "filter" || len(cs[1].Rules) != 2 {
		t.Fatalf("chains = %+v", cs)
	}
	for _, r := range cs[0].Rules {
		if _, ok := r[len(r)-1].(*expr.Masq); !ok {
			t.Errorf("postrouting rule does not end in masquerade: %#v", r)
		}
	}
	for _, r := range cs[1].Rules {
		if v, ok := r[len(r)-1].(*expr.Verdict); !ok || v.Kind != expr.VerdictAccept {
			t.Errorf("forward rule does not end in accept: %#v", r)
		}
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
