package rtnl

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/kfeature"
	"github.com/nsntrace/nsntrace/internal/testbed"
)

// setupIn reserves and sets up a run inside host namespace h for the child
// namespace c, as the CLI does.
func setupIn(t *testing.T, h, c *testbed.NS) (Plan, *Link) {
	t.Helper()
	cf, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	var p Plan
	var l *Link
	err = h.Do(func() error {
		var unlock func()
		var err error
		p, unlock, err = Reserve(nil)
		if err != nil {
			return err
		}
		defer unlock()
		l, err = Setup(p, int(cf.Fd()))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Do(l.Close) })
	return p, l
}

func TestUplink(t *testing.T) {
	in := testbed.NewInternet(t, &testbed.InternetConfig{UplinkName: "wan7"})
	err := in.H.Do(func() error {
		ifi, err := Uplink("")
		if err != nil {
			return err
		}
		if ifi.Name != "wan7" {
			return fmt.Errorf("Uplink(\"\") = %s, want wan7", ifi.Name)
		}
		if _, err := Uplink("nosuch0"); err == nil || err.Error() != `device "nosuch0" does not exist` {
			return fmt.Errorf("Uplink(nosuch0) error = %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bare := testbed.NewNS(t)
	bare.Do(func() error {
		if _, err := Uplink(""); err == nil || err.Error() != "no default route" {
			t.Errorf("Uplink without default route: %v", err)
		}
		return nil
	})
}

func TestSetupReachesUpstream(t *testing.T) {
	in := testbed.NewInternet(t, nil)
	c := testbed.NewNS(t)
	p, l := setupIn(t, in.H, c)
	// No NAT here (package nft does that): the upstream routes the reply
	// only to the uplink's subnet, so check the link itself.
	out := c.Run(t, "ping", "-c1", "-W5", p.HostAddr.Addr().String())
	if !strings.Contains(out, "1 received") {
		t.Fatalf("ping gateway: %s", out)
	}
	addr := c.Run(t, "ip", "-br", "addr")
	if !strings.Contains(addr, p.PeerAddr.String()) || !strings.Contains(addr, "lo ") {
		t.Fatalf("inside addresses: %s", addr)
	}
	var lo int
	if err := c.Do(func() error {
		ifi, err := net.InterfaceByName("lo")
		if err == nil {
			lo = ifi.Index
		}
		return err
	}); err != nil || l.LoopbackIndex() != lo {
		t.Fatalf("LoopbackIndex = %d, want lo's %d (%v)", l.LoopbackIndex(), lo, err)
	}
	route := c.Run(t, "ip", "route")
	if !strings.Contains(route, "default via "+p.HostAddr.Addr().String()) {
		t.Fatalf("inside routes: %s", route)
	}
	if p.HostAddr6.IsValid() {
		out := c.Run(t, "ping", "-6", "-c1", "-W5", p.HostAddr6.Addr().String())
		if !strings.Contains(out, "1 received") {
			t.Fatalf("ping6 gateway: %s", out)
		}
	}
	if err := in.H.Do(l.Close); err != nil {
		t.Fatal(err)
	}
	if err := in.H.Do(l.Close); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if links := in.H.Run(t, "ip", "-br", "link"); strings.Contains(links, p.HostIf) {
		t.Fatalf("veth left after Close: %s", links)
	}
}

func TestConcurrentRunsDistinct(t *testing.T) {
	in := testbed.NewInternet(t, nil)
	const n = 32
	children := make([]*testbed.NS, n)
	for i := range children {
		children[i] = testbed.NewNS(t)
	}
	plans := make([]Plan, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			plans[i], _ = setupIn(t, in.H, children[i])
		}(i)
	}
	wg.Wait()
	names, subnets := map[string]bool{}, map[string]bool{}
	for _, p := range plans {
		if names[p.HostIf] || subnets[p.HostAddr.Masked().String()] {
			t.Fatalf("plan %+v collides", p)
		}
		names[p.HostIf], subnets[p.HostAddr.Masked().String()] = true, true
	}
	for i, c := range children {
		out := c.Run(t, "ping", "-c1", "-W5", plans[i].HostAddr.Addr().String())
		if !strings.Contains(out, "1 received") {
			t.Fatalf("run %d cannot reach its gateway: %s", i, out)
		}
	}
}

// TestVethDiesWithNamespace: the crash-safety argument of the package.
func TestVethDiesWithNamespace(t *testing.T) {
	in := testbed.NewInternet(t, nil)
	c := testbed.NewNS(t)
	p, _ := setupIn(t, in.H, c)
	c.Run(t, "true")
	if out, err := testbedDelete(c); err != nil {
		t.Fatalf("delete child namespace: %v: %s", err, out)
	}
	// The kernel dismantles a namespace from a work queue (cleanup_net),
	// after the last reference is gone: the veth goes soon, not at once.
	deadline := time.Now().Add(10 * time.Second)
	for {
		links := in.H.Run(t, "ip", "-br", "link")
		if !strings.Contains(links, p.HostIf) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("host veth survived its namespace by 10 s: %s", links)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUnknownLinkKind shows the kernel's answer for a link kind no driver
// registered, which is what a kernel without veth (CONFIG_VETH, or its
// module absent) answers Setup: EOPNOTSUPP, which kfeature.Veth names.
func TestUnknownLinkKind(t *testing.T) {
	testbed.RequirePrivileged(t)
	ns := testbed.NewNS(t)
	err := ns.Do(func() error {
		c, err := rtnetlink.Dial(nil)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Link.New(&rtnetlink.LinkMessage{
			Family:     unix.AF_UNSPEC,
			Attributes: &rtnetlink.LinkAttributes{Name: "nsnnone0", Info: &rtnetlink.LinkInfo{Kind: "nsntrace-none"}},
		})
	})
	if !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("a link of an unknown kind: %v, want EOPNOTSUPP", err)
	}
	var me *kfeature.MissingError
	if !errors.As(kfeature.Veth(err), &me) || me.Config != "CONFIG_VETH" {
		t.Errorf("kfeature.Veth(%v) = %v", err, kfeature.Veth(err))
	}
}

// TestReserveHonoursClaims: a subnet another run holds is passed over even
// when no address of it is on the host (as when a dump misses one), and it
// is free again once the holder lets go; a Link holds its claim from Setup
// to Close.
func TestReserveHonoursClaims(t *testing.T) {
	in := testbed.NewInternet(t, nil)
	reserve := func() Plan {
		t.Helper()
		var p Plan
		err := in.H.Do(func() error {
			var unlock func()
			var err error
			p, unlock, err = Reserve(nil)
			if err == nil {
				unlock() // no Setup: the claim goes with the lock
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	claim := func(p Plan) (*subnetClaim, error) {
		var c *subnetClaim
		err := in.H.Do(func() error {
			var err error
			c, err = claimSubnets(p.HostAddr, p.HostAddr6)
			return err
		})
		return c, err
	}

	first := reserve()
	other, err := claim(first) // another run, its addresses not yet visible
	if err != nil {
		t.Fatalf("claim %s after Reserve's unlock without Setup: %v", first.HostAddr, err)
	}
	if p := reserve(); p.HostAddr == first.HostAddr || p.HostAddr6.IsValid() && p.HostAddr6 == first.HostAddr6 {
		t.Fatalf("Reserve planned %s/%s, held by another run", p.HostAddr, p.HostAddr6)
	}
	other.release()
	if p := reserve(); p.HostAddr != first.HostAddr {
		t.Fatalf("Reserve planned %s after the claim on %s was released", p.HostAddr, first.HostAddr)
	}

	p, l := setupIn(t, in.H, testbed.NewNS(t))
	if _, err := claim(p); !errors.Is(err, errClaimed) {
		t.Fatalf("claim %s of a set-up link: %v, want errClaimed", p.HostAddr, err)
	}
	if err := in.H.Do(l.Close); err != nil {
		t.Fatal(err)
	}
	c, err := claim(p)
	if err != nil {
		t.Fatalf("claim %s after the link closed: %v", p.HostAddr, err)
	}
	c.release()
}
