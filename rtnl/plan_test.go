package rtnl

import (
	"net/netip"
	"testing"
)

func TestPickSubnet(t *testing.T) {
	pool := netip.MustParsePrefix("10.213.0.0/16")
	used := []netip.Prefix{
		netip.MustParsePrefix("10.213.0.0/31"),  // an earlier run
		netip.MustParsePrefix("10.213.0.2/32"),  // an address
		netip.MustParsePrefix("0.0.0.0/0"),      // a default route blocks nothing
		netip.MustParsePrefix("10.213.0.4/30"),  // a route
		netip.MustParsePrefix("192.168.1.0/24"), // unrelated
	}
	got, idx, err := pickSubnet(pool, used)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParsePrefix("10.213.0.8/31"); got != want || idx != 4 {
		t.Fatalf("pickSubnet = %s (index %d), want %s (index 4)", got, idx, want)
	}
	if _, _, err := pickSubnet(netip.MustParsePrefix("10.0.0.0/30"), []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}); err == nil {
		t.Fatal("exhausted pool gave no error")
	}
	if _, _, err := pickSubnet(netip.MustParsePrefix("fd00::/64"), nil); err == nil {
		t.Fatal("IPv6 pool accepted")
	}
}

func TestPlanFor(t *testing.T) {
	p := planFor(netip.MustParsePrefix("10.213.0.8/31"), 4, "nsnabcx1", Config{IPv6: true, Pool6: DefaultPool6})
	if p.HostAddr.String() != "10.213.0.8/31" || p.PeerAddr.String() != "10.213.0.9/31" {
		t.Errorf("v4 plan %s %s", p.HostAddr, p.PeerAddr)
	}
	if p.HostAddr6.String() != "fd6e:7374:7261:4::1/64" || p.PeerAddr6.String() != "fd6e:7374:7261:4::2/64" {
		t.Errorf("v6 plan %s %s", p.HostAddr6, p.PeerAddr6)
	}
	if p.PeerIf != "eth0" {
		t.Errorf("peer %q", p.PeerIf)
	}
}

func TestHostIfName(t *testing.T) {
	seen := map[string]bool{}
	for pid := 1; pid < 5000000; pid += 99991 {
		for n := 1; n < 50; n++ {
			s := hostIfName(pid, n)
			if len(s) > 15 || seen[s] {
				t.Fatalf("name %q: too long or repeated", s)
			}
			seen[s] = true
		}
	}
}

func TestIsHostIfName(t *testing.T) {
	for pid := 1; pid < 5000000; pid += 499979 {
		for _, n := range []int{1, 35, 36, 1 << 20} {
			if s := hostIfName(pid, n); !isHostIfName(s) {
				t.Errorf("isHostIfName(%q) = false for a name hostIfName made", s)
			}
		}
	}
	for _, s := range []string{"eth0", "nsn", "nsnx1", "nsnabc", "nsnAx1", "nsn1x-", "uplink0", "lo"} {
		if isHostIfName(s) {
			t.Errorf("isHostIfName(%q) = true", s)
		}
	}
}
