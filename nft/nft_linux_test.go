package nft

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/testbed"
	"github.com/nsntrace/nsntrace/rtnl"
)

const envHold = "NSNTRACE_NFT_TEST_HOLD"

// envOld makes Install take the path of kernels before 5.2 (no owner
// flag, no nat in inet tables) in a hold helper.
const envOld = "NSNTRACE_NFT_TEST_OLD"

// TestMain doubles as a helper process that installs a table inside the
// namespace named by $NSNTRACE_NFT_TEST_HOLD and waits to be killed.
func TestMain(m *testing.M) {
	MaybeReap()
	if os.Getenv(envOld) == "1" {
		forceFeatures = &features{}
	}
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
	return runPorts(t, in, nil)
}

// runPorts is run with published ports.
func runPorts(t *testing.T, in *testbed.Internet, ports []Port) (*testbed.NS, rtnl.Plan, *Table) {
	t.Helper()
	return runSpec(t, in, func(s *Spec) { s.Publish = ports })
}

// runSpec is run with the Spec changed by edit.
func runSpec(t *testing.T, in *testbed.Internet, edit func(*Spec)) (*testbed.NS, rtnl.Plan, *Table) {
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
		s := Spec{Table: "nsntrace_t_" + p.HostIf, Subnet: p.HostAddr.Masked(), Subnet6: p.HostAddr6.Masked(), Uplink: in.UplinkH, Veth: p.HostIf,
			Peer: p.PeerAddr.Addr(), Peer6: p.PeerAddr6.Addr()}
		edit(&s)
		tb, err = Install(s)
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
		fmt.Sprintf(`oifname "%s" ct state established,related accept`, p.HostIf),
		fmt.Sprintf(`oifname "%s" drop`, p.HostIf),
		fmt.Sprintf(`iifname "%s" oifname "uplink0" accept`, p.HostIf),
		fmt.Sprintf(`iifname "%s" drop`, p.HostIf),
		"type nat hook postrouting priority srcnat; policy accept;",
		"type filter hook forward priority filter; policy accept;",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("nft list lacks %q:\n%s", want, list)
		}
	}
	// The forward chain's rules in the Spec's order: the drops last.
	if i, j := strings.Index(list, "established,related accept"), strings.Index(list, fmt.Sprintf(`iifname "%s" drop`, p.HostIf)); i < 0 || j < i {
		t.Errorf("forward rules out of order:\n%s", list)
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

// serve runs an HTTP server on port 8081 of every address of ns until the
// test ends.
func serve(t *testing.T, ns *testbed.NS) {
	t.Helper()
	var l net.Listener
	if err := ns.Do(func() (err error) {
		l, err = net.Listen("tcp", ":8081")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "inside a trace\n")
	}))
}

// reaches reports whether a TCP connection from ns to addr is accepted.
// A closed door drops the SYN: the dial then ends by its timeout, which
// only bounds how long the test waits, whatever the machine's speed.
func reaches(t *testing.T, ns *testbed.NS, addr netip.AddrPort) bool {
	t.Helper()
	return dial(t, ns, addr, 3*time.Second) == nil
}

// mustReach fails the test unless a TCP connection from ns to addr is
// accepted, saying how the dial failed. Its timeout lets the SYN go out
// four times (at 0, 1, 3 and 7 s): a door that is open does not need
// them, but a SYN lost while a neighbour is resolved on a loaded machine
// must not make it look closed.
func mustReach(t *testing.T, ns *testbed.NS, addr netip.AddrPort, what string) {
	t.Helper()
	if err := dial(t, ns, addr, 8*time.Second); err != nil {
		t.Errorf("%s does not reach %s: %v", what, addr, err)
	}
}

// dial connects from ns to addr and closes the connection.
func dial(t *testing.T, ns *testbed.NS, addr netip.AddrPort, timeout time.Duration) error {
	t.Helper()
	var derr error
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", addr.String(), timeout)
		if err == nil {
			c.Close()
		}
		derr = err
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return derr
}

// TestOnlyWhatTheProgramStarted: with a route to the runs' subnets, the
// upstream must not reach a server inside a run, and two runs must not
// reach each other; the program's own connections still work.
func TestOnlyWhatTheProgramStarted(t *testing.T) {
	in := testbed.NewInternet(t, nil)
	c1, p1, _ := run(t, in)
	c2, p2, _ := run(t, in)
	in.U.Sh(t, fmt.Sprintf("ip route add %s via %s\nip -6 route add %s via %s",
		rtnl.DefaultPool, testbed.HostAddr, rtnl.DefaultPool6, testbed.HostAddr6))
	serve(t, c1)
	serve(t, c2)
	// The server is up: the program's namespace reaches it itself.
	own := netip.AddrPortFrom(p1.PeerAddr.Addr(), 8081)
	mustReach(t, c1, own, "run 1 (its own server)")
	if t.Failed() {
		t.FailNow()
	}
	for _, c := range []struct {
		what string
		from *testbed.NS
		to   netip.AddrPort
	}{
		{"upstream -> run 1", in.U, own},
		{"upstream -> run 1 (IPv6)", in.U, netip.AddrPortFrom(p1.PeerAddr6.Addr(), 8081)},
		{"run 2 -> run 1", c2, own},
		{"run 1 -> run 2", c1, netip.AddrPortFrom(p2.PeerAddr.Addr(), 8081)},
		{"run 1 -> run 2 (IPv6)", c1, netip.AddrPortFrom(p2.PeerAddr6.Addr(), 8081)},
	} {
		if reaches(t, c.from, c.to) {
			t.Errorf("%s: connection to %s accepted", c.what, c.to)
		}
	}
	// What the programs start still works, both ways of the connection.
	for _, c := range []*testbed.NS{c1, c2} {
		if got := fetch(t, c, "http://198.51.100.80:8080/"); got != testbed.HTTPBody {
			t.Fatalf("curl = %q", got)
		}
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

// hold starts a helper process that installs a table in ns and holds it
// until killed; the caller kills it.
func hold(t *testing.T, ns *testbed.NS, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envHold+"="+ns.Name), env...)
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
	return cmd
}

// waitTableGone waits until the held run's table is gone from ns, and
// fails the test if it is still there after within.
func waitTableGone(t *testing.T, ns *testbed.NS, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		tables := ns.Run(t, "nft", "list", "tables")
		if !strings.Contains(tables, "nsntrace_hold") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("table still there %v after SIGKILL of its run: %s", within, tables)
		}
	}
}

func TestTableGoneAfterSIGKILL(t *testing.T) {
	in := testbed.NewInternet(t, nil)
	cmd := hold(t, in.H)
	if tables := in.H.Run(t, "nft", "list", "tables"); !strings.Contains(tables, "nsntrace_hold") {
		t.Fatalf("helper's table missing: %s", tables)
	}
	cmd.Process.Kill()
	cmd.Wait()
	waitTableGone(t, in.H, 10*time.Second)
	// Sweep restores what the killed run changed and finds nothing else.
	sweep(t, in.H)
}

// TestOldKernelTableGoneAfterSIGKILL: without the owner flag (before
// 5.12) the reaper deletes the table of a run killed with SIGKILL, within
// 3 s, and Sweep then has nothing to do.
func TestOldKernelTableGoneAfterSIGKILL(t *testing.T) {
	in := testbed.NewInternet(t, nil)
	cmd := hold(t, in.H, envOld+"=1")
	tables := in.H.Run(t, "nft", "list", "tables")
	if !strings.Contains(tables, "table ip nsntrace_hold") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper's ip table missing: %s", tables)
	}
	if list := in.H.Run(t, "nft", "list", "table", "ip", "nsntrace_hold"); strings.Contains(list, "owner") {
		t.Errorf("table flagged owner on the old path:\n%s", list)
	}
	cmd.Process.Kill()
	cmd.Wait()
	waitTableGone(t, in.H, 3*time.Second)
	if did := sweep(t, in.H); len(did) > 0 {
		t.Errorf("Sweep after the reaper: %q", did)
	}
}

// TestOldKernelMasquerade: on the path of kernels before 5.2, the run gets
// ip and ip6 tables without the owner flag that masquerade both families,
// and Close removes them and ends the reaper.
func TestOldKernelMasquerade(t *testing.T) {
	oldKernel(t)
	in := testbed.NewInternet(t, nil)
	c, p, tb := run(t, in)
	if got := fetch(t, c, "http://198.51.100.80:8080/v4"); got != testbed.HTTPBody {
		t.Fatalf("curl = %q", got)
	}
	if got := fetch(t, c, "http://[fd77:80::80]:8080/v6"); got != testbed.HTTPBody {
		t.Fatalf("curl v6 = %q", got)
	}
	for fam, want := range map[string]string{
		"ip":  fmt.Sprintf(`ip saddr %s oifname "uplink0" masquerade`, p.HostAddr.Masked()),
		"ip6": fmt.Sprintf(`ip6 saddr %s oifname "uplink0" masquerade`, p.HostAddr6.Masked()),
	} {
		list := in.H.Run(t, "nft", "list", "table", fam, tb.Name())
		for _, w := range []string{want, fmt.Sprintf(`iifname "%s" drop`, p.HostIf)} {
			if !strings.Contains(list, w) {
				t.Errorf("nft list table %s lacks %q:\n%s", fam, w, list)
			}
		}
		if strings.Contains(list, "owner") {
			t.Errorf("table %s flagged owner on the old path:\n%s", fam, list)
		}
	}
	reaper := tb.reaper.cmd.Process.Pid
	if err := in.H.Do(tb.Close); err != nil {
		t.Fatal(err)
	}
	if tables := in.H.Run(t, "nft", "list", "tables"); strings.Contains(tables, tb.Name()) {
		t.Fatalf("tables left after Close: %s", tables)
	}
	if err := unix.Kill(reaper, 0); err == nil {
		t.Errorf("reaper %d still runs after Close", reaper)
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// netnsInode is the inode of ns's network namespace.
func netnsInode(t *testing.T, ns *testbed.NS) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(ns.Path(), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// deadRecord is the forwarding record a SIGKILLed run left for its
// namespace: the directory's name (DEV-INO-COOKIE) and its files.
type deadRecord struct {
	id    netnsID
	files map[string][]byte
}

// recordOf reads the forwarding record of the namespace with inode ino,
// which must still exist: sweeps keep the records of live namespaces.
func recordOf(t *testing.T, ino uint64) deadRecord {
	t.Helper()
	ents, err := os.ReadDir(forwardDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		id, ok := parseNetnsID(e.Name())
		if !ok || id.ino != ino {
			continue
		}
		rec := deadRecord{id: id, files: map[string][]byte{}}
		dir := filepath.Join(forwardDir, e.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(dir, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			rec.files[f.Name()] = b
		}
		return rec
	}
	t.Fatalf("no forwarding record of net:[%d] in %s", ino, forwardDir)
	return deadRecord{}
}

// namespaceWithInode returns a new namespace with the dead namespace's
// inode and the dead namespace's record naming it, as the kernel and a
// SIGKILLed run leave them: the kernel reuses the lowest free inode number
// once a namespace is freed (nsfs numbers come from an IDA), but
// asynchronously, and other tests' namespaces may take it first; and any
// trace's sweep (other packages' tests run traces meanwhile) may remove
// the record once its namespace is gone. So after a short wait for the
// kernel, it takes a fresh namespace and gives it the record: DEV-INO-COOKIE
// with the new inode and the dead namespace's cookie, what real reuse
// leaves.
func namespaceWithInode(t *testing.T, rec deadRecord) *testbed.NS {
	t.Helper()
	var ns *testbed.NS
	for deadline := time.Now().Add(5 * time.Second); ns == nil; time.Sleep(100 * time.Millisecond) {
		n := testbed.NewNS(t)
		switch {
		case netnsInode(t, n) == rec.id.ino:
			t.Logf("the kernel gave inode %d to a new namespace", rec.id.ino)
			ns = n
		case time.Now().After(deadline):
			t.Logf("the dead namespace's record %s is given to inode %d, as if the kernel had reused it", rec.id, netnsInode(t, n))
			ns = n
		}
	}
	id := rec.id
	id.ino = netnsInode(t, ns)
	dir := filepath.Join(forwardDir, id.String())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range rec.files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

// TestForwardRecordOfDeletedNamespace: a run SIGKILLed in a namespace
// whose ip_forward it turned on leaves its record; the namespace is then
// deleted and a new one gets the same inode. A run there must leave that
// namespace's ip_forward=1 as it found it, not "restore" the dead
// namespace's 0.
func TestForwardRecordOfDeletedNamespace(t *testing.T) {
	old := testbed.NewNS(t)
	old.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=0")
	cmd := hold(t, old)
	if v := strings.TrimSpace(old.Run(t, "sysctl", "-n", "net.ipv4.ip_forward")); v != "1" {
		t.Fatalf("ip_forward during the held run = %s", v)
	}
	cmd.Process.Kill()
	cmd.Wait()
	rec := recordOf(t, netnsInode(t, old))
	old.Delete(t)

	ns := namespaceWithInode(t, rec)
	t.Cleanup(func() { sweep(t, ns) }) // the dead namespace's record
	ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	err := ns.Do(func() error {
		tb, err := Install(Spec{Table: "nsntrace_reuse", Subnet: mustPrefix("10.213.98.0/31"), Uplink: "uplink0", Veth: "nsnreuse"})
		if err != nil {
			return err
		}
		return tb.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(ns.Run(t, "sysctl", "-n", "net.ipv4.ip_forward")); v != "1" {
		t.Fatalf("ip_forward of the new namespace after a run = %s, want 1 as it was", v)
	}
}

// sweep runs Sweep inside ns (never in the test's own namespace, whose
// ruleset and sysctls are not the test's) and returns what it reported.
func sweep(t *testing.T, ns *testbed.NS) []string {
	t.Helper()
	var did []string
	if err := ns.Do(func() (err error) {
		did, err = Sweep()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return did
}

// TestSweepSaysWhatItRemoved: a run SIGKILLed with ip_forward turned on
// leaves a record. Sweep in its namespace restores the setting; Sweep
// anywhere else, once that namespace is deleted, removes the record. Each
// says so.
func TestSweepSaysWhatItRemoved(t *testing.T) {
	a, b := testbed.NewNS(t), testbed.NewNS(t)
	for _, ns := range []*testbed.NS{a, b} {
		ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=0")
		cmd := hold(t, ns)
		cmd.Process.Kill()
		cmd.Wait()
	}
	did := strings.Join(sweep(t, a), "\n")
	if !strings.Contains(did, "restored /proc/sys/net/ipv4/ip_forward=0") {
		t.Errorf("Sweep in the crashed run's namespace said %q", did)
	}
	if v := strings.TrimSpace(a.Run(t, "sysctl", "-n", "net.ipv4.ip_forward")); v != "0" {
		t.Errorf("ip_forward after Sweep = %s, want 0 restored", v)
	}
	// b's record stays while b exists: b's runs restore it.
	if did := strings.Join(sweep(t, a), "\n"); did != "" {
		t.Errorf("second Sweep said %q", did)
	}
	ino := netnsInode(t, b)
	b.Delete(t)
	did = strings.Join(sweep(t, a), "\n")
	if want := fmt.Sprintf("of network namespace net:[%d], which no longer exists", ino); !strings.Contains(did, want) {
		t.Errorf("Sweep after the namespace was deleted said %q, want %q", did, want)
	}
}

// oldKernel makes the rest of the test see a kernel without the nftables
// features of later ones (owner tables, nat in inet tables).
func oldKernel(t *testing.T) {
	forceFeatures = &features{}
	t.Cleanup(func() { forceFeatures = nil })
}

// newAndOld runs f as a subtest on this kernel, then as on an old one
// (old true).
func newAndOld(t *testing.T, f func(t *testing.T, old bool)) {
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprint("old=", old), func(t *testing.T) {
			if old {
				oldKernel(t)
			}
			f(t, old)
		})
	}
}

// TestSweepReadsLegacyRecords: a run of an older version, which kept its
// records under /run/nsntrace, was killed after it turned ip_forward on;
// the next sweep, by this version, restores it from there. (The records
// go in a directory of the test's own: the C nsntrace, run by another
// package's test meanwhile, may remove /run/nsntrace.)
func TestSweepReadsLegacyRecords(t *testing.T) {
	saved := legacyForwardDir
	legacyForwardDir = filepath.Join(t.TempDir(), "forward")
	t.Cleanup(func() { legacyForwardDir = saved })
	ns := testbed.NewNS(t)
	ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	var id netnsID
	if err := ns.Do(func() (err error) { id, err = currentNetns(); return err }); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(legacyForwardDir, id.String())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]string{"orig-ipv4": "0", "999999999-1": ""} { // a run long gone
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	did := strings.Join(sweep(t, ns), "\n")
	if !strings.Contains(did, "restored /proc/sys/net/ipv4/ip_forward=0") {
		t.Errorf("Sweep said %q, want the legacy record's ip_forward restored", did)
	}
	if v := strings.TrimSpace(ns.Run(t, "sysctl", "-n", "net.ipv4.ip_forward")); v != "0" {
		t.Errorf("ip_forward after Sweep = %s, want 0 restored", v)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the legacy record %s is still there (%v)", dir, err)
	}
}
