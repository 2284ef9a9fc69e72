//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// askWho connects to addr from ns over network (tcp or udp) and returns
// what the whoami step answers: the client's address as the program saw
// it.
func askWho(ns *testbed.NS, network, addr string) (string, error) {
	var got string
	err := ns.Do(func() error {
		c, err := net.DialTimeout(network, addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if network == "tcp" {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(c)
			got = string(b)
			return err
		}
		buf := make([]byte, 1500)
		var errs []error
		for try := 0; try < 5; try++ {
			if _, err := c.Write([]byte("who")); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, err := c.Read(buf)
			if err == nil {
				got = string(buf[:n])
				return nil
			}
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	return got, err
}

// startPublished starts a trace of a whoami server on port 80 with args
// (the -p flags) and waits until the program runs. The caller ends it by
// creating the returned file.
func (e *e2e) startPublished(file, token string, stderr io.Writer, args ...string) (wait func() int, done string) {
	t := e.t
	t.Helper()
	ready, done := filepath.Join(e.dir, "ready-"+token), filepath.Join(e.dir, "done-"+token)
	cmd := e.cmd(append(append([]string{"-o", file}, args...),
		helper("token", token, "whoami", "80", "touch", ready, "wait", done)...)...)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ended := false
	t.Cleanup(func() {
		if !ended {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the program never got going: %s", stderr)
		}
	}
	return func() int {
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		ended = true
		return waitEnd(t, cmd, "the program ended")
	}, done
}

// TestPublish: with -p 8080:80 and -p 8080:80/udp, clients in the upstream
// namespace and on the host itself reach the program's port 80 over IPv4
// and IPv6, TCP and UDP; the program sees each client's own address
// (no SNAT), except through loopback, where nsntrace's forwarder connects
// from the gateway; and the summary lists them all as inbound.
func TestPublish(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	token := fmt.Sprintf("nsntrace-e2e-pub-%d", os.Getpid())
	file := filepath.Join(e.dir, "p.pcapng")
	js := filepath.Join(e.dir, "p.json")
	var stderr testbed.SyncBuffer
	end, _ := e.startPublished(file, token, &stderr, "--summary", js, "-p", "8080:80", "-p", "8080:80/udp")
	m := reAddr.FindStringSubmatch(stderr.String())
	if m == nil || m[2] == "" {
		t.Fatalf("no IPv4 and IPv6 address announced:\n%s", stderr.String())
	}
	gw := netip.MustParseAddr(m[1]).Prev() // the /31's other address
	if netip.MustParseAddr(m[1]).As4()[3]%2 == 0 {
		gw = netip.MustParseAddr(m[1]).Next()
	}
	for _, c := range []struct {
		from *testbed.NS
		to   string
		want netip.Addr // the client's address the program sees; zero: the gateway's (any)
	}{
		{e.in.U, "10.77.0.2:8080", testbed.UpstreamAddr},
		{e.in.U, "[fd77::2]:8080", testbed.UpstreamAddr6},
		{e.in.H, "10.77.0.2:8080", testbed.HostAddr},
		{e.in.H, "[fd77::2]:8080", testbed.HostAddr6},
		{e.in.H, "127.0.0.1:8080", gw},
		{e.in.H, "[::1]:8080", netip.Addr{}},
	} {
		for _, network := range []string{"tcp", "udp"} {
			got, err := askWho(c.from, network, c.to)
			name := map[*testbed.NS]string{e.in.U: "upstream", e.in.H: "host"}[c.from]
			if err != nil {
				t.Errorf("%s -> %s %s: %v", name, network, c.to, err)
				continue
			}
			ap, perr := netip.ParseAddrPort(got)
			switch {
			case perr != nil:
				t.Errorf("%s -> %s %s: answer %q", name, network, c.to, got)
			case c.want.IsValid() && ap.Addr() != c.want:
				t.Errorf("%s -> %s %s: the program saw the client as %s, want %s", name, network, c.to, ap.Addr(), c.want)
			case !c.want.IsValid() && (ap.Addr().IsLoopback() || !ap.Addr().Is6()):
				t.Errorf("%s -> %s %s: the program saw the client as %s, want the run's IPv6 gateway", name, network, c.to, ap.Addr())
			}
		}
	}
	if code := end(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	t.Logf("nsntrace's stderr:\n%s", stderr.String())
	// Inbound, by the program's port 80, with each client's address.
	r := readSummary(t, js)
	seen := map[string]bool{}
	for _, c := range r.Connections {
		if c.Direction == "inbound" && c.LocalPort == 80 {
			seen[c.Proto+" "+c.RemoteAddr] = true
		}
	}
	for _, a := range []string{testbed.UpstreamAddr.String(), testbed.UpstreamAddr6.String(), testbed.HostAddr.String(), testbed.HostAddr6.String(), gw.String()} {
		for _, p := range []string{"tcp", "udp"} {
			if !seen[p+" "+a] {
				t.Errorf("summary has no inbound %s connection from %s: %v", p, a, seen)
			}
		}
	}
	if !strings.Contains(stderr.String(), "Inbound connections:") {
		t.Errorf("no inbound part in the summary on stderr:\n%s", stderr.String())
	}
	if n := count(t, file, "tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.dstport == 80 && ip.src == 10.77.0.1"); n != 1 {
		t.Errorf("%d SYNs from the upstream to port 80 in the file, want 1", n)
	}
	e.clean(token)
}

// TestPublishConflict: a host port another program holds, or another run
// publishes, stops the run with one sentence and exit 125 before anything
// exists: no veth, no table, no file.
func TestPublishConflict(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	var l net.Listener
	if err := e.in.H.Do(func() (err error) {
		l, err = net.Listen("tcp", "10.77.0.2:8090")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stderr testbed.SyncBuffer
	end, _ := e.startPublished(filepath.Join(e.dir, "a.pcapng"), "nsntrace-e2e-pubA", &stderr, "-p", "8091:80/udp")
	for _, c := range []struct{ what, p, want string }{
		{"bound on the host", "8090:80", "port 8090/tcp of the host is in use"},
		{"published by another run", "8091:81/udp", "port 8091/udp of the host is in use"},
		{"not a host address", "192.0.2.1:8092:80", "192.0.2.1 is not an address of this host"},
	} {
		r := e.trace("b.pcapng", append([]string{"-p", c.p}, helper("exit", "0")...)...)
		if r.code != exitFailure || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%s: -p %s: exit %d, stderr %q; want %d and one line with %q", c.what, c.p, r.code, r.stderr, exitFailure, c.want)
		}
		if _, err := os.Stat(r.file); err == nil {
			t.Errorf("%s: %s created", c.what, r.file)
		}
	}
	// Only the first run's veth and table exist while it runs.
	if links := e.in.H.Run(t, "ip", "-br", "link"); strings.Count(links, "\n") != 3 {
		t.Errorf("links besides lo, the uplink and the first run's veth:\n%s", links)
	}
	if code := end(); code != 0 {
		t.Errorf("first run: exit %d:\n%s", code, stderr.String())
	}
	e.clean("nsntrace-e2e-pubB")
}

// TestPublishBadSyntax: a -p that is not [HOSTADDR:]HOSTPORT:PORT[/tcp|/udp]
// is one sentence saying so, and exit 125.
func TestPublishBadSyntax(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	for _, p := range []string{"80", "0:80", "8080:70000", "8080:80/sctp", "host:8080:80", "8080:80:90"} {
		r := e.trace("bad.pcapng", append([]string{"-p", p}, helper("exit", "0")...)...)
		first, _, _ := strings.Cut(r.stderr, "\n")
		if r.code != exitFailure || !strings.HasPrefix(first, fmt.Sprintf("nsntrace: -p %q: ", p)) || !strings.Contains(first, "[HOSTADDR:]HOSTPORT:PORT[/tcp|/udp]") {
			t.Errorf("-p %s: exit %d, stderr %q", p, r.code, r.stderr)
		}
	}
	e.clean("")
}
