package nft

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsntrace/nsntrace/internal/testbed"
	"github.com/nsntrace/nsntrace/rtnl"
)

const envHold = "NSNTRACE_NFT_TEST_HOLD"

// TestMain doubles as a helper process that installs a table inside the
// namespace named by $NSNTRACE_NFT_TEST_HOLD and waits to be killed.
func TestMain(m *testing.M) {
	if ns := os.Getenv(envHold); ns != "" {
		h := &testbed.NS{Name: ns}
		err := h.Do(func() error {
			tb, err := Install(Spec{Table: "nsntrace_hold", Subnet: mustPrefix("10.213.99.0/31"), Uplink: "uplink0", Veth: "nsnhold"})
			if err != nil {
				return err
			}
			_ = tb // kept open until SIGKILL
			fmt.Println("ready")
			select {}
		})
		fmt.Println(err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// run sets up a traced-like namespace c behind host h with veth and table.
func run(t *testing.T, in *testbed.Internet) (*testbed.NS, rtnl.Plan, *Table) {
	t.Helper()
	c := testbed.NewNS(t)
	cf, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	var p rtnl.Plan
	var tb *Table
	var link *rtnl.Link
	err = in.H.Do(func() error {
		var unlock func()
		var err error
		if p, unlock, err = rtnl.Reserve(nil); err != nil {
			return err
		}
		defer unlock()
		if link, err = rtnl.Setup(p, int(cf.Fd())); err != nil {
			return err
		}
		tb, err = Install(Spec{Table: "nsntrace_t_" + p.HostIf, Subnet: p.HostAddr.Masked(), Subnet6: p.HostAddr6.Masked(), Uplink: in.UplinkH, Veth: p.HostIf})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.H.Do(tb.Close)
		in.H.Do(link.Close)
	})
	return c, p, tb
}

func fetch(t *testing.T, c *testbed.NS, args ...string) string {
	t.Helper()
	return c.Run(t, "curl", append([]string{"-sS", "--max-time", "10"}, args...)...)
}

func TestMasqueradeAndCleanup(t *testing.T) {
	in := testbed.NewInternet(t, nil)
	c, p, tb := run(t, in)
	if got := fetch(t, c, "http://198.51.100.80:8080/v4"); got != testbed.HTTPBody {
		t.Fatalf("curl = %q", got)
	}
	if got := fetch(t, c, "http://[fd77:80::80]:8080/v6"); got != testbed.HTTPBody {
		t.Fatalf("curl v6 = %q", got)
	}
	// UDP echo through NAT too.
	out := c.Run(t, "bash", "-c", `exec 3<>/dev/udp/10.77.0.1/7; printf ping >&3; timeout 5 head -c4 <&3`)
	if out != "ping" {
		t.Fatalf("udp echo = %q", out)
	}
	seen := map[string]bool{}
	for _, s := range in.Seen() {
		seen[s.Service+" "+s.Remote.Addr().String()] = true
	}
	for _, want := range []string{"http " + testbed.HostAddr.String(), "http " + testbed.HostAddr6.String(), "udp-echo " + testbed.HostAddr.String()} {
		if !seen[want] {
			t.Errorf("upstream did not see %q (masquerade): %v", want, seen)
		}
	}
	list := in.H.Run(t, "nft", "list", "table", "inet", tb.Name())
	for _, want := range []string{
		"flags owner",
		fmt.Sprintf(`ip saddr %s oifname "uplink0" masquerade`, p.HostAddr.Masked()),
		fmt.Sprintf(`iifname "%s" accept`, p.HostIf),
		fmt.Sprintf(`oifname "%s" accept`, p.HostIf),
		"type nat hook postrouting priority srcnat; policy accept;",
		"type filter hook forward priority filter; policy accept;",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("nft list lacks %q:\n%s", want, list)
		}
	}
	if err := in.H.Do(tb.Close); err != nil {
		t.Fatal(err)
	}
	if err := in.H.Do(tb.Close); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if tables := in.H.Run(t, "nft", "list", "tables"); strings.Contains(tables, tb.Name()) {
		t.Fatalf("table left after Close: %s", tables)
	}
}

func TestForwardDropHost(t *testing.T) {
	in := testbed.NewInternet(t, &testbed.InternetConfig{ForwardDrop: true})
	c, _, tb := run(t, in)
	if got := fetch(t, c, "http://198.51.100.80:8080/"); got != testbed.HTTPBody {
		t.Fatalf("curl through a drop-policy host = %q", got)
	}
	if rs := in.H.Run(t, "nft", "list", "chain", "ip", "filter", "FORWARD"); !strings.Contains(rs, "accept") {
		t.Fatalf("no accept inserted: %s", rs)
	}
	if err := in.H.Do(tb.Close); err != nil {
		t.Fatal(err)
	}
	for _, fam := range []string{"ip", "ip6"} {
		if rs := in.H.Run(t, "nft", "list", "chain", fam, "filter", "FORWARD"); strings.Contains(rs, "accept") {
			t.Fatalf("accept rules left in %s filter FORWARD: %s", fam, rs)
		}
	}
}

func TestIPForwardRestored(t *testing.T) {
	in := testbed.NewInternet(t, &testbed.InternetConfig{NoIPForward: true})
	c, _, tb := run(t, in)
	if v := strings.TrimSpace(in.H.Run(t, "sysctl", "-n", "net.ipv4.ip_forward")); v != "1" {
		t.Fatalf("ip_forward during the run = %s", v)
	}
	if got := fetch(t, c, "http://198.51.100.80:8080/"); got != testbed.HTTPBody {
		t.Fatalf("curl = %q", got)
	}
	if err := in.H.Do(tb.Close); err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(in.H.Run(t, "sysctl", "-n", "net.ipv4.ip_forward")); v != "0" {
		t.Fatalf("ip_forward after the run = %s, want 0 restored", v)
	}
}

func TestTableGoneAfterSIGKILL(t *testing.T) {
	in := testbed.NewInternet(t, nil)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envHold+"="+in.H.Name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q", line)
	}
	if tables := in.H.Run(t, "nft", "list", "tables"); !strings.Contains(tables, "nsntrace_hold") {
		t.Fatalf("helper's table missing: %s", tables)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tables := in.H.Run(t, "nft", "list", "tables")
		if !strings.Contains(tables, "nsntrace_hold") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("table survived SIGKILL of its owner: %s", tables)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Sweep restores what the killed run changed and finds nothing else.
	if err := in.H.Do(Sweep); err != nil {
		t.Fatal(err)
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
