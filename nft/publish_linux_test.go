package nft

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

func TestPublishChainsSpec(t *testing.T) {
	s := Spec{Subnet: netip.MustParsePrefix("10.213.0.8/31"), Subnet6: netip.MustParsePrefix("fd6e:7374:7261:4::/64"), Uplink: "eth0", Veth: "nsnabcx1",
		Peer: netip.MustParseAddr("10.213.0.9"), Peer6: netip.MustParseAddr("fd6e:7374:7261:4::2"),
		Publish: []Port{
			{Proto: TCP, HostPort: 8080, Port: 80},
			{Proto: UDP, HostAddr: netip.MustParseAddr("192.0.2.7"), HostPort: 53, Port: 5353},
			{Proto: TCP, HostAddr: netip.MustParseAddr("127.0.0.1"), HostPort: 9000, Port: 80},
		}}
	cs, err := s.Chains()
	if err != nil {
		t.Fatal(err)
	}
	ne := func(v uint32) string { return fmt.Sprintf("%x", binaryutil.NativeEndian.PutUint32(v)) }
	notOwn := `iifname != "nsnabcx1" `
	local := "fib daddr type " + ne(2) + " "
	tcp8080 := "l4proto 06 @th,16,16 1f90 "
	to4, to6 := "reg1=0ad50009 reg2=0050 dnat2 reg1:reg2 specified=true", "reg1=fd6e7374726100040000000000000002 reg2=0050 dnat10 reg1:reg2 specified=true"
	want := map[string][]string{
		"prerouting": {
			"nfproto 02 " + notOwn + local + tcp8080 + to4,
			"nfproto 0a " + notOwn + local + tcp8080 + to6,
			"nfproto 02 " + notOwn + "@nh,128,32 c0000207 l4proto 11 @th,16,16 0035 reg1=0ad50009 reg2=14e9 dnat2 reg1:reg2 specified=true",
		},
		// The host's own clients, but not through loopback.
		"output": {
			"nfproto 02 " + local + "@nh,128,32 & ff000000 != 7f000000 " + tcp8080 + to4,
			"nfproto 0a " + local + "@nh,192,128 != 00000000000000000000000000000001 " + tcp8080 + to6,
			"nfproto 02 @nh,128,32 c0000207 l4proto 11 @th,16,16 0035 reg1=0ad50009 reg2=14e9 dnat2 reg1:reg2 specified=true",
		},
		"forward": {
			`oifname "nsnabcx1" ct state & ` + ne(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED) + ` != 00000000 accept`,
			`oifname "nsnabcx1" l4proto 06 @th,16,16 0050 ct status & ` + ne(0x20) + ` != 00000000 accept`,
			`oifname "nsnabcx1" l4proto 11 @th,16,16 14e9 ct status & ` + ne(0x20) + ` != 00000000 accept`,
			`oifname "nsnabcx1" drop`,
			`iifname "nsnabcx1" oifname "eth0" accept`,
			`iifname "nsnabcx1" drop`,
		},
	}
	hooks := map[string]uint32{"prerouting": unix.NF_INET_PRE_ROUTING, "output": unix.NF_INET_LOCAL_OUT, "postrouting": unix.NF_INET_POST_ROUTING, "forward": unix.NF_INET_FORWARD}
	for _, c := range cs {
		if c.Hook != hooks[c.Name] {
			t.Errorf("chain %s: hook %d", c.Name, c.Hook)
		}
		if want[c.Name] == nil {
			continue
		}
		var got []string
		for _, r := range c.Rules {
			got = append(got, render(r))
		}
		if strings.Join(got, "\n") != strings.Join(want[c.Name], "\n") {
			t.Errorf("chain %s:\n%s\nwant:\n%s", c.Name, strings.Join(got, "\n"), strings.Join(want[c.Name], "\n"))
		}
	}
	// Old kernels: ip and ip6 tables each get their family's DNAT, without
	// the nfproto match, and every forward rule.
	for fam, n := range map[byte]int{unix.NFPROTO_IPV4: 2, unix.NFPROTO_IPV6: 1} {
		fc, err := s.familyChains(fam, cs)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range fc {
			for _, r := range c.Rules {
				if strings.HasPrefix(render(r), "nfproto") {
					t.Errorf("family %d chain %s keeps %s", fam, c.Name, render(r))
				}
			}
			if c.Name == "prerouting" && len(c.Rules) != n || c.Name == "forward" && len(c.Rules) != 6 || c.Name == "postrouting" && len(c.Rules) != 1 {
				t.Errorf("family %d chain %s: %d rules", fam, c.Name, len(c.Rules))
			}
		}
	}
	// An IPv6 host address needs the program's IPv6 address.
	s.Peer6 = netip.Addr{}
	s.Publish = []Port{{Proto: TCP, HostAddr: netip.MustParseAddr("fd00::1"), HostPort: 1, Port: 1}}
	if _, err := s.Chains(); err == nil {
		t.Error("IPv6 host address without an IPv6 peer accepted")
	}
	// Without ports, no nat chains but postrouting.
	s.Publish = nil
	if cs, _ := s.Chains(); len(cs) != 2 {
		t.Errorf("without ports: %d chains", len(cs))
	}
}

// TestPublishInstalled: the kernel takes the published ports' rules, in
// inet tables and on the old-kernel ip and ip6 path, nft list shows them
// as the Spec says, and the upstream reaches a server in the run's
// namespace through the host's port.
func TestPublishInstalled(t *testing.T) {
	newAndOld(t, func(t *testing.T, old bool) {
		in := testbed.NewInternet(t, nil)
		c, p, tb := runPorts(t, in, []Port{{Proto: TCP, HostPort: 8082, Port: 8081}})
		serve(t, c)
		for _, to := range []string{"10.77.0.2:8082", "[fd77::2]:8082"} {
			mustReach(t, in.U, netip.MustParseAddrPort(to), "upstream")
		}
		if reaches(t, in.U, netip.AddrPortFrom(testbed.HostAddr, 8083)) {
			t.Errorf("upstream reaches an unpublished port")
		}
		lists := map[string]string{}
		if old {
			lists["ip"] = in.H.Run(t, "nft", "list", "table", "ip", tb.Name())
			lists["ip6"] = in.H.Run(t, "nft", "list", "table", "ip6", tb.Name())
		} else {
			l := in.H.Run(t, "nft", "list", "table", "inet", tb.Name())
			lists["ip"], lists["ip6"] = l, l
		}
		for fam, want := range map[string][]string{
			"ip": {
				fmt.Sprintf(`iifname != "%s" fib daddr type local tcp dport 8082 dnat ip to %s:8081`, p.HostIf, p.PeerAddr.Addr()),
				fmt.Sprintf(`fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 8082 dnat ip to %s:8081`, p.PeerAddr.Addr()),
				fmt.Sprintf(`oifname "%s" tcp dport 8081 ct status dnat accept`, p.HostIf),
				"type nat hook prerouting priority dstnat; policy accept;",
				"type nat hook output priority -100; policy accept;",
			},
			"ip6": {
				fmt.Sprintf(`iifname != "%s" fib daddr type local tcp dport 8082 dnat ip6 to [%s]:8081`, p.HostIf, p.PeerAddr6.Addr()),
				fmt.Sprintf(`fib daddr type local ip6 daddr != ::1 tcp dport 8082 dnat ip6 to [%s]:8081`, p.PeerAddr6.Addr()),
			},
		} {
			for _, w := range want {
				if old { // the table's family says it
					w = strings.NewReplacer("dnat ip to", "dnat to", "dnat ip6 to", "dnat to").Replace(w)
				}
				if !strings.Contains(lists[fam], w) {
					t.Errorf("nft list (%s) lacks %q:\n%s", fam, w, lists[fam])
				}
			}
		}
	})
}
