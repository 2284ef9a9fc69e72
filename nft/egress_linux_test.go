package nft

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// dialFails connects from ns to addr over network and returns the error
// and how long it took to come: for UDP, a datagram and the wait for its
// echo or the ICMP error reported on the connected socket.
func dialFails(t *testing.T, ns *testbed.NS, network string, addr netip.AddrPort) (error, time.Duration) {
	t.Helper()
	var derr error
	var took time.Duration
	if err := ns.Do(func() error {
		start := time.Now()
		c, err := net.DialTimeout(network, addr.String(), 5*time.Second)
		if err == nil && network == "udp" {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 64)
			for try := 0; try < 2 && err == nil; try++ { // the first write's error comes on the next call
				if _, err = c.Write([]byte("hi")); err == nil {
					_, err = c.Read(buf)
				}
			}
		}
		took = time.Since(start)
		if c != nil {
			c.Close()
		}
		derr = err
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return derr, took
}

// TestEgressInstalled: with an enforced policy, an allowed address works,
// an unlisted one is refused at once (TCP reset: ECONNREFUSED; UDP: ICMP
// administratively prohibited, EHOSTUNREACH), and a Grant opens an
// address for its port and protocol until its timeout, in inet tables and
// in the ip and ip6 tables of old kernels. nft list shows the sets.
func TestEgressInstalled(t *testing.T) {
	newAndOld(t, func(t *testing.T, old bool) {
		in := testbed.NewInternet(t, nil)
		c, p, tb := runSpec(t, in, func(s *Spec) {
			s.Egress = &Egress{Allow: []EgressRule{{Prefix: netip.PrefixFrom(testbed.ServerAddr, 32), Port: 8080, Proto: TCP}},
				Relay: netip.AddrPortFrom(s.Subnet.Addr(), 5353)}
		})
		// The host itself: its uplink address is refused like any
		// other; the relay's port on the gateway is allowed, and
		// only it.
		relay := netip.AddrPortFrom(p.HostAddr.Addr(), 5353)
		for _, a := range []netip.AddrPort{relay, netip.AddrPortFrom(testbed.HostAddr, 5353), netip.AddrPortFrom(p.HostAddr.Addr(), 5354)} {
			var l net.Listener
			if err := in.H.Do(func() (err error) { l, err = net.Listen("tcp", a.String()); return }); err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		if err, _ := dialFails(t, c, "tcp", relay); err != nil {
			t.Errorf("the relay %s on the gateway: %v", relay, err)
		}
		for _, a := range []netip.AddrPort{netip.AddrPortFrom(testbed.HostAddr, 5353), netip.AddrPortFrom(p.HostAddr.Addr(), 5354)} {
			if err, took := dialFails(t, c, "tcp", a); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("the host's own %s: %v after %v, want connection refused (reset)", a, err, took)
			}
		}
		allowed := netip.AddrPortFrom(testbed.ServerAddr, 8080)
		other := netip.AddrPortFrom(testbed.UpstreamAddr, 8080)
		if err, _ := dialFails(t, c, "tcp", allowed); err != nil {
			t.Fatalf("allowed %s: %v", allowed, err)
		}
		err, took := dialFails(t, c, "tcp", other)
		t.Logf("unlisted %s/tcp failed after %v: %v", other, took, err)
		if !errors.Is(err, syscall.ECONNREFUSED) || took >= 5*time.Second {
			t.Errorf("unlisted %s/tcp: %v after %v, want connection refused (reset) before the 5 s timeout", other, err, took)
		}
		echo := netip.AddrPortFrom(testbed.UpstreamAddr, 7)
		err, took = dialFails(t, c, "udp", echo)
		t.Logf("unlisted %s/udp failed after %v: %v", echo, took, err)
		if !errors.Is(err, syscall.EHOSTUNREACH) || took >= 5*time.Second {
			t.Errorf("unlisted %s/udp: %v after %v, want host unreachable (ICMP admin-prohibited) before the 5 s timeout", echo, err, took)
		}
		err, _ = dialFails(t, c, "tcp", netip.MustParseAddrPort("[fd77:80::80]:8080"))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("unlisted IPv6 address: %v, want connection refused", err)
		}

		// Grants: the echo address for UDP port 7 only, for 2 s; an
		// IPv6 address for any port.
		if err := in.H.Do(func() error { return tb.Grant(testbed.UpstreamAddr, 7, UDP, 2*time.Second, false) }); err != nil {
			t.Fatal(err)
		}
		if err := in.H.Do(func() error { return tb.Grant(testbed.ServerAddr6, 0, 0, time.Minute, false) }); err != nil {
			t.Fatal(err)
		}
		if err, _ := dialFails(t, c, "udp", echo); err != nil {
			t.Errorf("granted %s/udp: %v", echo, err)
		}
		if err, _ := dialFails(t, c, "tcp", netip.AddrPortFrom(testbed.UpstreamAddr, 7)); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("a UDP grant let TCP through: %v", err)
		}
		if err, _ := dialFails(t, c, "tcp", netip.MustParseAddrPort("[fd77:80::80]:8080")); err != nil {
			t.Errorf("granted IPv6 address: %v", err)
		}
		list := in.H.Run(t, "nft", "list", "ruleset")
		for _, w := range []string{"type ipv4_addr . inet_proto . inet_service", "flags timeout", "10.77.0.1 . udp . 7", "fd77:80::80", "reject with tcp reset"} {
			if !strings.Contains(list, w) {
				t.Errorf("nft list ruleset lacks %q:\n%s", w, list)
			}
		}
		// Extending a live grant, then its end.
		if err := in.H.Do(func() error { return tb.Grant(testbed.UpstreamAddr, 7, UDP, 2*time.Second, true) }); err != nil {
			t.Fatalf("extend: %v", err)
		}
		time.Sleep(2500 * time.Millisecond)
		if err, _ := dialFails(t, c, "udp", echo); !errors.Is(err, syscall.EHOSTUNREACH) {
			t.Errorf("%s/udp after its grant ended: %v, want refused", echo, err)
		}
		// Extending one that timed out meanwhile adds it anew.
		if err := in.H.Do(func() error { return tb.Grant(testbed.UpstreamAddr, 7, UDP, time.Minute, true) }); err != nil {
			t.Fatalf("extend a grant that ended: %v", err)
		}
		if err, _ := dialFails(t, c, "udp", echo); err != nil {
			t.Errorf("granted again %s/udp: %v", echo, err)
		}
	})
}
