//go:build linux

package main

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nsntrace/nsntrace/internal/testbed"
	"github.com/nsntrace/nsntrace/rtnl"
)

// TestDoorsClosed: the upstream, given a route to the runs' subnets, must
// not reach a server the traced program started nor use the DNS relay as
// a resolver; a concurrent trace must not reach either. The traced
// program's own DNS through the relay keeps working.
func TestDoorsClosed(t *testing.T) {
	t.Parallel()
	e := newE2E(t, &testbed.InternetConfig{LoopbackResolver: true})
	e.in.U.Run(t, "ip", "route", "add", rtnl.DefaultPool.String(), "via", testbed.HostAddr.String())

	// Trace A serves HTTP and holds still until released.
	ready, release := filepath.Join(e.dir, "ready"), filepath.Join(e.dir, "release")
	errf, err := os.Create(filepath.Join(e.dir, "a.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	a := e.cmd(append([]string{"-o", filepath.Join(e.dir, "a.pcapng")},
		helper("dns", "resolv.conf", "serve", ":8081", "touch", ready, "wait", release)...)...)
	var aout bytes.Buffer
	a.Stdout, a.Stderr = &aout, errf
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.WriteFile(release, nil, 0o644) // best effort: the run may be gone
		a.Wait()
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("trace A never got going")
		}
	}
	msgs, err := os.ReadFile(errf.Name())
	if err != nil {
		t.Fatal(err)
	}
	m := reAddr.FindStringSubmatch(string(msgs))
	g := regexp.MustCompile(`relayed from ([0-9.]*[0-9]) `).FindStringSubmatch(string(msgs))
	if m == nil || g == nil {
		t.Fatalf("trace A announced no address or relay: %s", msgs)
	}
	server := netip.AddrPortFrom(netip.MustParseAddr(m[1]), 8081).String()
	relay := netip.AddrPortFrom(netip.MustParseAddr(g[1]), 53).String()

	// From the upstream.
	err = e.in.U.Do(func() error {
		if c, err := net.DialTimeout("tcp", server, 3*time.Second); err == nil {
			c.Close()
			t.Errorf("upstream reaches the traced program's server %s", server)
		}
		for _, nw := range []string{"udp", "tcp"} {
			if dnsAnswered(nw, relay) {
				t.Errorf("upstream gets DNS answers from the relay %s over %s", relay, nw)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// From a concurrent trace.
	b := e.trace("b.pcapng", helper("connect", server, "dns", relay)...)
	if b.code != 0 {
		t.Fatalf("trace B: exit %d", b.code)
	}
	for _, leak := range []string{"connect " + server + ": true", "dns udp " + relay + ": true", "dns tcp " + relay + ": true"} {
		if strings.Contains(b.stdout, leak) {
			t.Errorf("another trace: %s", leak)
		}
	}

	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Fatalf("trace A: %v", err)
	}
	// The program itself still gets its answers from the relay.
	for _, nw := range []string{"udp", "tcp"} {
		if want := fmt.Sprintf("dns %s %s: true", nw, relay); !strings.Contains(aout.String(), want) {
			t.Errorf("trace A's program got no DNS answer over %s: %q", nw, aout.String())
		}
	}
	e.clean("")
}
