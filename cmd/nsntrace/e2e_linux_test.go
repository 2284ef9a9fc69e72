//go:build linux

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsntrace/nsntrace/internal/rundir"
	"github.com/nsntrace/nsntrace/internal/testbed"
)

// End-to-end tests: the real nsntrace binary, run inside the host
// namespace H of the private internet (shared/TESTBED.md), traces
// programs that talk to servers in the upstream namespace U. Nothing
// leaves the namespaces the tests create.

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// result is what one nsntrace run produced.
type result struct {
	code           int
	stdout, stderr string
	file           string
	addr           netip.Addr // the program's address, from the messages
	addr6          netip.Addr // and its IPv6 address, if it has one
}

// is returns a display filter for frames whose src, dst or addr field
// is one of the program's addresses, whichever the family.
func (r result) is(field string) string {
	if !r.addr6.IsValid() {
		return fmt.Sprintf("ip.%s == %s", field, r.addr)
	}
	return fmt.Sprintf("(ip.%s == %s || ipv6.%s == %s)", field, r.addr, field, r.addr6)
}

// e2e is one test's private internet and nsntrace binary.
type e2e struct {
	t   *testing.T
	in  *testbed.Internet
	bin string
	dir string
}

func newE2E(t *testing.T, cfg *testbed.InternetConfig) *e2e {
	t.Helper()
	testbed.RequirePrivileged(t)
	testbed.RequireTool(t, "tshark")
	testbed.RequireTool(t, "capinfos")
	return &e2e{t: t, in: testbed.NewInternet(t, cfg), bin: testbed.Binary(t), dir: t.TempDir()}
}

// helper returns the argv that runs this test binary as a traced program
// doing steps.
func helper(steps ...string) []string {
	return append([]string{"env", helperEnv + "=1", os.Args[0]}, steps...)
}

// cmd returns nsntrace with args, to be run inside H.
func (e *e2e) cmd(args ...string) *exec.Cmd {
	return e.in.H.Command(e.bin, args...)
}

var reAddr = regexp.MustCompile(`Your IP address in this trace is ([0-9.]*[0-9])(?: and ([0-9a-f:]*[0-9a-f]))?`)

// trace runs nsntrace -o FILE args... in H and waits for it.
func (e *e2e) trace(name string, args ...string) result {
	e.t.Helper()
	r := result{file: filepath.Join(e.dir, name)}
	cmd := e.cmd(append([]string{"-o", r.file}, args...)...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := runBounded(cmd)
	r.stdout, r.stderr = so.String(), se.String()
	r.code = exitCode(e.t, err)
	if m := reAddr.FindStringSubmatch(r.stderr); m != nil {
		r.addr = netip.MustParseAddr(m[1])
		if m[2] != "" {
			r.addr6 = netip.MustParseAddr(m[2])
		}
	}
	e.t.Logf("nsntrace %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// runNoFail runs cmd and returns its exit status (-1 if it did not run)
// and output. It never fails the test, so goroutines may call it.
func runNoFail(cmd *exec.Cmd) (code int, stdout, stderr string) {
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := runBounded(cmd)
	var ee *exec.ExitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		code = -1
	}
	return code, so.String(), se.String()
}

// runBounded runs cmd; one that has not ended after two minutes (a stop
// condition that failed) gets SIGINT, as from ctrl-c, so that its test
// fails rather than hangs, and its cleanup runs.
func runBounded(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	backstop := time.AfterFunc(2*time.Minute, func() { cmd.Process.Signal(os.Interrupt) })
	defer backstop.Stop()
	return cmd.Wait()
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("run nsntrace: %v", err)
	return -1
}

// tsharkOK reads the file with tshark and capinfos, failing on any
// complaint, and returns capinfos' report.
func tsharkOK(t *testing.T, file string) string {
	t.Helper()
	cmd := exec.Command("tshark", "-n", "-r", file)
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark -r %s: %v: %s", file, err, se.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(se.String()), "\n") {
		if l != "" && !strings.HasPrefix(l, "Running as user") {
			t.Errorf("tshark -r %s warns: %s", file, l)
		}
	}
	out, err := exec.Command("capinfos", "-M", file).CombinedOutput()
	if err != nil {
		t.Fatalf("capinfos %s: %v: %s", file, err, out)
	}
	return string(out)
}

// fields returns tshark's -T fields rows for the frames matching filter.
func fields(t *testing.T, file, filter string, names ...string) [][]string {
	t.Helper()
	args := []string{"-n", "-r", file, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"}
	if filter != "" {
		args = append(args, "-Y", filter)
	}
	for _, n := range names {
		args = append(args, "-e", n)
	}
	cmd := exec.Command("tshark", args...)
	var se bytes.Buffer
	cmd.Stderr = &se
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v: %s", strings.Join(args, " "), err, se.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(se.String()), "\n") {
		if l != "" && !strings.HasPrefix(l, "Running as user") {
			t.Errorf("tshark -r %s warns: %s", file, l)
		}
	}
	var rows [][]string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if l != "" {
			rows = append(rows, strings.Split(l, "\t"))
		}
	}
	return rows
}

func count(t *testing.T, file, filter string) int {
	t.Helper()
	return len(fields(t, file, filter, "frame.number"))
}

// linkChatter matches what a namespace says by itself on a fresh link.
const linkChatter = "arp or icmpv6.type in {133, 134, 135, 136, 143} or (ipv6.dst == ff02::/16)"

// clean checks that a run left nothing in H: no veth but the uplink, no
// nft table, no process; and that no process still carries token.
func (e *e2e) clean(token string) {
	t := e.t
	t.Helper()
	out := e.in.H.Run(t, "ip", "-br", "link")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		name, _, _ := strings.Cut(strings.Fields(l)[0], "@")
		if name != "lo" && name != e.in.UplinkH {
			t.Errorf("left behind in H: link %s", l)
		}
	}
	if out := strings.TrimSpace(e.in.H.Run(t, "nft", "list", "tables")); out != "" {
		t.Errorf("left behind in H: nft tables %s", out)
	}
	// Not through `ip netns exec`: that would list its own process.
	pids, err := exec.Command("ip", "netns", "pids", e.in.H.Name).Output()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v", e.in.H.Name, err)
	}
	for _, pid := range strings.Fields(string(pids)) {
		b, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		t.Errorf("left behind in H: process %s: %q", pid, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
	}
	if token != "" {
		ents, err := os.ReadDir("/proc")
		if _, serr := os.Stat(filepath.Join("/proc", fmt.Sprint(os.Getpid()))); err != nil || serr != nil {
			t.Fatalf("cannot see processes in /proc: %v %v", err, serr)
		}
		for _, d := range ents {
			b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
			if err == nil && bytes.Contains(b, []byte(token)) {
				t.Errorf("left behind: process %s: %q", d.Name(), bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
			}
		}
	}
}

func TestCurlThroughLoopbackResolver(t *testing.T) {
	t.Parallel()
	e := newE2E(t, &testbed.InternetConfig{LoopbackResolver: true})
	testbed.RequireTool(t, "curl")
	r := e.trace("curl.pcapng", "curl", "-sS", "http://www.example.test:8080/")
	if r.code != 0 || r.stdout != testbed.HTTPBody {
		t.Fatalf("exit %d, stdout %q; want 0 and the page", r.code, r.stdout)
	}
	if !r.addr.IsValid() {
		t.Fatalf("no program address in the messages: %s", r.stderr)
	}
	for _, want := range []string{"Starting network trace of 'curl -sS http://www.example.test:8080/' on interface uplink0.", "Use ctrl-c to end at any time.", "relayed from"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("messages lack %q", want)
		}
	}
	info := tsharkOK(t, r.file)
	// curl may take either family: the zone has A and AAAA records.
	for _, c := range []struct{ what, filter string }{
		{"DNS query", r.is("src") + ` && dns.flags.response == 0 && dns.qry.name == "www.example.test" && udp.dstport == 53`},
		{"DNS answer", fmt.Sprintf(`%s && dns.flags.response == 1 && dns.a == %s`, r.is("dst"), testbed.ServerAddr)},
		{"SYN", r.is("src") + ` && tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.dstport == 8080 && frame.packet_flags_direction == 2`},
		{"SYN-ACK", r.is("dst") + ` && tcp.flags.syn == 1 && tcp.flags.ack == 1 && tcp.srcport == 8080 && frame.packet_flags_direction == 1`},
		{"HTTP request", r.is("src") + ` && http.request.method == "GET" && http.host == "www.example.test:8080"`},
		{"HTTP response", r.is("dst") + ` && http.response.code == 200`},
	} {
		if count(t, r.file, c.filter) == 0 {
			t.Errorf("no %s in the trace (%s)", c.what, c.filter)
		}
	}
	// Nothing else: the program's DNS and HTTP, and link-level chatter.
	mine := fmt.Sprintf(`(%s && (udp.port == 53 || tcp.port == 53 || tcp.port == 8080))`, r.is("addr"))
	if rows := fields(t, r.file, fmt.Sprintf("!(%s) && !(%s)", mine, linkChatter), "frame.number", "_ws.col.Protocol", "_ws.col.Info"); len(rows) > 0 {
		t.Errorf("unexpected frames: %q", rows)
	}
	for _, want := range []string{
		"Capture comment:     nsntrace", "curl -sS http://www.example.test:8080/",
		"Capture application: nsntrace", "Number of stat entries = 1",
	} {
		if !strings.Contains(info, want) {
			t.Errorf("capinfos lacks %q:\n%s", want, info)
		}
	}
	ifname := fields(t, r.file, "frame.number == 1", "frame.interface_name", "frame.interface_description")
	if len(ifname) == 0 || !strings.HasPrefix(ifname[0][0], "nsn") || !strings.Contains(ifname[0][1], "curl") {
		t.Errorf("interface name/description = %q", ifname)
	}
	e.clean("")
}

func TestUDPEchoAndPing(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	r := e.trace("udp.pcapng", helper("udp", testbed.UpstreamAddr.String()+":7", "hello-udp-echo",
		"ping", testbed.ServerAddr.String(), "2")...)
	if r.code != 0 || !strings.Contains(r.stdout, "udp echo: hello-udp-echo") || !strings.Contains(r.stdout, "echo reply 2") {
		t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
	}
	tsharkOK(t, r.file)
	a := r.addr.String() // the echo server and ping are IPv4
	for _, c := range []struct{ what, filter string }{
		{"UDP to the echo server", fmt.Sprintf(`ip.src == %s && ip.dst == %s && udp.dstport == 7 && udp.payload == "hello-udp-echo" && frame.packet_flags_direction == 2`, a, testbed.UpstreamAddr)},
		{"UDP echo", fmt.Sprintf(`ip.dst == %s && udp.srcport == 7 && udp.payload == "hello-udp-echo" && frame.packet_flags_direction == 1`, a)},
		{"echo request", fmt.Sprintf(`ip.src == %s && ip.dst == %s && icmp.type == 8`, a, testbed.ServerAddr)},
		{"echo reply", fmt.Sprintf(`ip.dst == %s && icmp.type == 0`, a)},
	} {
		if n := count(t, r.file, c.filter); n == 0 || (strings.HasPrefix(c.what, "echo") && n != 2) {
			t.Errorf("%d frames of %s (%s)", n, c.what, c.filter)
		}
	}
	if rows := fields(t, r.file, fmt.Sprintf("!(%s && (udp.port == 7 || icmp)) && !(%s)", r.is("addr"), linkChatter), "_ws.col.Info"); len(rows) > 0 {
		t.Errorf("unexpected frames: %q", rows)
	}
	e.clean("")
}

func TestFilter(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	testbed.RequireTool(t, "curl")
	r := e.trace("filtered.pcapng", "-f", "tcp port 8080", "curl", "-sS", "http://www.example.test:8080/")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	info := tsharkOK(t, r.file)
	if n := count(t, r.file, ""); n == 0 || n != count(t, r.file, "tcp.port == 8080") {
		t.Errorf("%d frames, %d of them tcp port 8080", n, count(t, r.file, "tcp.port == 8080"))
	}
	if count(t, r.file, "http.response.code == 200") != 1 {
		t.Error("the HTTP response is missing")
	}
	if !strings.Contains(info, "Filter string = tcp port 8080") {
		t.Errorf("if_filter not in the file:\n%s", info)
	}
}

func TestLiveToStdout(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	gate := filepath.Join(e.dir, "gate")
	// The program sends, then waits for the test: so the packet can only
	// reach tshark while it still runs if nsntrace streams.
	ns := e.cmd(append([]string{"-o", "-"}, helper("udp", testbed.UpstreamAddr.String()+":7", "live-packet", "wait", gate)...)...)
	ts := exec.Command("tshark", "-l", "-n", "-r", "-", "-Y", `udp.payload == "live-packet"`)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ns.Stdout, ts.Stdin = pw, pr
	var nsErr bytes.Buffer
	ns.Stderr = &nsErr
	tsOut, err := ts.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	if err := ts.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	pw.Close()
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(tsOut)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("tshark ended without showing the packet")
		}
		t.Logf("tshark, live: %s", l)
	case <-time.After(30 * time.Second):
		t.Error("tshark showed nothing while the program ran")
	}
	os.WriteFile(gate, nil, 0o644)
	err = ns.Wait()
	code := exitCode(t, err)
	for range lines {
	}
	ts.Wait()
	if code != 0 {
		t.Fatalf("nsntrace -o -: exit %d: %s", code, nsErr.String())
	}
	// The program's stdout went to stderr, not into the capture.
	if !strings.Contains(nsErr.String(), "udp echo: live-packet") {
		t.Errorf("program output not on stderr: %s", nsErr.String())
	}
}

func TestRunAsUser(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	r := e.trace("user.pcapng", "-u", "nobody", "sh", "-c", "id -u; id -g")
	if r.code != 0 || r.stdout != "65534\n65534\n" {
		t.Fatalf("exit %d, stdout %q; want uid and gid of nobody", r.code, r.stdout)
	}
	tsharkOK(t, r.file)
}

func TestInterrupt(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	for _, tc := range []struct {
		name       string
		ignoreTerm bool
		sigints    int
		want       int
	}{
		{"sigterm ends the program", false, 1, 128 + int(syscall.SIGTERM)},
		{"sigkill after the grace period", true, 1, 128 + int(syscall.SIGKILL)},
		{"second ctrl-c skips the grace period", true, 2, 128 + int(syscall.SIGKILL)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &e2e{t: t, in: e.in, bin: e.bin, dir: t.TempDir()}
			ready := filepath.Join(e.dir, "ready")
			token := fmt.Sprintf("nsntrace-e2e-token-%d-%d", os.Getpid(), time.Now().UnixNano())
			steps := []string{"token", token, "udp", testbed.UpstreamAddr.String() + ":7", "before-interrupt", "touch", ready}
			if tc.ignoreTerm {
				steps = append([]string{"ignore-term"}, steps...)
			}
			steps = append(steps, "sleep", "1h")
			file := filepath.Join(e.dir, "int.pcapng")
			cmd := e.cmd(append([]string{"-o", file}, helper(steps...)...)...)
			pr, pw := io.Pipe()
			cmd.Stderr = pw
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			stopping := make(chan struct{})
			go func() {
				sc := bufio.NewScanner(pr)
				once := sync.Once{}
				for sc.Scan() {
					stderr.WriteString(sc.Text() + "\n")
					if strings.Contains(sc.Text(), "stopping") {
						once.Do(func() { close(stopping) })
					}
				}
			}()
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if _, err := os.Stat(ready); err == nil {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("the program never got going")
				}
			}
			cmd.Process.Signal(os.Interrupt)
			if tc.sigints == 2 {
				<-stopping
				cmd.Process.Signal(os.Interrupt)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatal("nsntrace did not end after SIGINT")
			}
			pw.Close()
			code := exitCode(t, err)
			t.Logf("stderr:\n%s", stderr.String())
			// nsntrace ends as the SIGINT it got says; how the program
			// ended (SIGTERM, or SIGKILL after the grace period) is on
			// stderr.
			if code != 128+int(syscall.SIGINT) {
				t.Errorf("exit %d, want %d", code, 128+int(syscall.SIGINT))
			}
			if want := fmt.Sprintf(" ended with status %d.", tc.want); !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr lacks %q", want)
			}
			info := tsharkOK(t, file)
			if !strings.Contains(info, "Number of stat entries = 1") {
				t.Errorf("no ISB: the file was not completed:\n%s", info)
			}
			if count(t, file, `udp.payload == "before-interrupt"`) != 2 {
				t.Error("the program's packets are missing")
			}
			e.clean(token)
		})
	}
}

func TestExitStatus(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	noExec, badFormat := filepath.Join(e.dir, "noexec"), filepath.Join(e.dir, "badformat")
	if err := os.WriteFile(noExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(badFormat, []byte("\x7fELF garbage"), 0o755); err != nil {
		t.Fatal(err)
	}
	noShebang, badInterp := filepath.Join(e.dir, "noshebang"), filepath.Join(e.dir, "badinterp")
	if err := os.WriteFile(noShebang, []byte("echo from sh >&2; exit 4\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(badInterp, []byte("#!/nonexistent/bash -e\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		want   int
		msg    string
		nofile bool
	}{
		{"success", []string{"true"}, 0, "Finished capturing", false},
		{"exit 3", helper("exit", "3"), 3, "Finished capturing", false},
		{"killed by a signal", []string{"sh", "-c", "kill -KILL $$"}, 128 + 9, "Finished capturing", false},
		{"missing program", []string{"no-such-program-nsntrace"}, 127, "nsntrace: no-such-program-nsntrace: command not found", true},
		{"not executable", []string{noExec}, 126, "permission denied", true},
		{"not a program", []string{badFormat}, 126, "exec format error", true},
		{"script without #!", []string{noShebang}, 4, "from sh", false},
		{"missing interpreter", []string{badInterp}, 127, "badinterp: bad interpreter /nonexistent/bash: no such file or directory", true},
		{"bad filter", []string{"-f", "tcp port", "true"}, 125, "bad filter", true},
		{"unknown device", []string{"-d", "nosuchdev0", "true"}, 125, "nosuchdev0", true},
		{"unknown user", []string{"-u", "no-such-user-nsntrace", "true"}, 125, "no-such-user-nsntrace", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &e2e{t: t, in: e.in, bin: e.bin, dir: t.TempDir()}
			r := e.trace("status.pcapng", tc.args...)
			if r.code != tc.want || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tc.want, tc.msg)
			}
			_, err := os.Stat(r.file)
			if tc.nofile && err == nil {
				t.Error("a failed run left its output file")
			}
			if !tc.nofile {
				tsharkOK(t, r.file)
			}
			e.clean("")
		})
	}
	t.Run("unwritable output", func(t *testing.T) {
		e := &e2e{t: t, in: e.in, bin: e.bin, dir: t.TempDir()}
		for _, out := range []string{filepath.Join(e.dir, "no/such/dir/f.pcapng"), e.dir} {
			cmd := e.cmd("-o", out, "true")
			b, err := cmd.CombinedOutput()
			if code := exitCode(t, err); code != exitFailure || !strings.Contains(string(b), "cannot write output") {
				t.Errorf("-o %s: exit %d, %q", out, code, b)
			}
		}
		if ents, _ := os.ReadDir(e.dir); len(ents) != 0 {
			t.Errorf("left behind: %v", ents)
		}
		e.clean("")
	})
}

func TestConcurrentTraces(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	const n = 16
	res := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			file := filepath.Join(e.dir, fmt.Sprintf("c%d.pcapng", i))
			// Every program stays alive until all 16 are running, so the
			// runs truly overlap and must not share names or subnets.
			cmd := e.cmd(append([]string{"-o", file}, helper("udp", testbed.UpstreamAddr.String()+":7", fmt.Sprintf("concurrent-%02d", i),
				"ping", testbed.ServerAddr.String(), "1",
				"touch", filepath.Join(e.dir, fmt.Sprintf("started-%d", i)), "wait", filepath.Join(e.dir, "release"))...)...)
			r := result{file: file}
			r.code, r.stdout, r.stderr = runNoFail(cmd)
			if m := reAddr.FindStringSubmatch(r.stderr); m != nil {
				r.addr = netip.MustParseAddr(m[1])
			}
			if r.code != 0 {
				// While the others still run: what the host's conntrack
				// and counters say of this program's lost flow.
				r.stderr += e.hostState()
			}
			res[i] = r
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, _ := filepath.Glob(filepath.Join(e.dir, "started-*"))
		if len(m) == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	addrs := map[netip.Addr]int{}
	for i, r := range res {
		if r.code != 0 || !r.addr.IsValid() {
			t.Errorf("trace %d: exit %d: %s", i, r.code, r.stderr)
			continue
		}
		if j, dup := addrs[r.addr]; dup {
			t.Errorf("traces %d and %d share address %s", j, i, r.addr)
		}
		addrs[r.addr] = i
	}
	if t.Failed() {
		return
	}
	// One tshark run per file (tshark is slow to start): every IP frame
	// must be this program's, with its own datagram and ping.
	for i, r := range res {
		want := fmt.Sprintf("%x", fmt.Sprintf("concurrent-%02d", i))
		echoes, replies := 0, 0
		for _, f := range fields(t, r.file, "ip", "ip.src", "ip.dst", "udp.payload", "icmp.type") {
			for len(f) < 4 {
				f = append(f, "")
			}
			if f[0] != r.addr.String() && f[1] != r.addr.String() {
				t.Errorf("trace %d (%s) holds another program's packet %q", i, r.addr, f)
			}
			if f[2] != "" {
				echoes++
				if strings.ReplaceAll(f[2], ":", "") != want {
					t.Errorf("trace %d holds another program's datagram %s", i, f[2])
				}
			}
			if f[3] == "0" && f[1] == r.addr.String() {
				replies++
			}
		}
		if echoes != 2 || replies != 1 {
			t.Errorf("trace %d: %d datagrams and %d echo replies, want 2 and 1", i, echoes, replies)
		}
	}
	e.clean("")
}

// hostState describes, for a failure report, what the host namespace's
// conntrack table holds, its non-zero IP and UDP counters, and the
// datagrams the upstream's echo server received.
func (e *e2e) hostState() string {
	var b strings.Builder
	for _, c := range [][]string{{"conntrack", "-L", "-p", "udp"}, {"nstat", "-as"}, {"ip", "-4", "neigh"}, {"nft", "list", "ruleset"}} {
		if _, err := exec.LookPath(c[0]); err != nil {
			continue
		}
		out, err := e.in.H.Command(c[0], c[1:]...).CombinedOutput()
		fmt.Fprintf(&b, "\n--- %s in the host namespace (%v):\n%s", strings.Join(c, " "), err, out)
	}
	// The neighbour tables (gc_thresh3) and the per-CPU backlogs that veths
	// queue to (softnet_stat's second column counts its drops) are one for
	// all namespaces: another test's flood or namespaces may fill them.
	if out, err := exec.Command("sh", "-c", "cat /proc/net/softnet_stat; dmesg | tail -n 20").CombinedOutput(); err == nil {
		fmt.Fprintf(&b, "\n--- the kernel's last messages:\n%s", out)
	}
	b.WriteString("\n--- the upstream's UDP echo server received:\n")
	for _, s := range e.in.Seen() {
		if s.Service == "udp-echo" {
			fmt.Fprintf(&b, "%s %q\n", s.Remote, s.Detail)
		}
	}
	return b.String()
}

// conversations returns "proto remote:port" for every TCP and UDP frame,
// the remote being the side that is not the program.
func conversations(t *testing.T, file string, program string) map[string]bool {
	out := map[string]bool{}
	for _, r := range fields(t, file, "ip && (tcp || udp)", "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport") {
		for len(r) < 6 {
			r = append(r, "")
		}
		proto, sp, dp := "tcp", r[2], r[3]
		if sp == "" {
			proto, sp, dp = "udp", r[4], r[5]
		}
		switch program {
		case r[0]:
			out[proto+" "+r[1]+":"+dp] = true
		case r[1]:
			out[proto+" "+r[0]+":"+sp] = true
		}
	}
	return out
}

func TestAgainstCNsntrace(t *testing.T) {
	t.Parallel()
	cbin := testbed.RequireTool(t, "nsntrace") // the Debian package's, in /usr/bin
	if filepath.Dir(cbin) != "/usr/bin" {
		cbin = "/usr/bin/nsntrace"
	}
	testbed.RequireTool(t, "iptables") // the C nsntrace runs it inside H
	testbed.RequireTool(t, "curl")
	e := newE2E(t, nil)
	// api.example.test has only an A record, so both traces use IPv4
	// whatever IPv6 the namespaces have.
	url := "http://api.example.test:8080/"
	cfile := filepath.Join(e.dir, "c.pcap")
	// What other runs keep must outlive the C one, which removes
	// /run/nsntrace and everything in it when it exits (nftw and
	// remove(3)), and it runs bare beside the other tests' runs: where
	// we kept our lock and forwarding records there, a concurrent
	// test's run once failed to create its record.
	if err := os.MkdirAll(rundir.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(rundir.Path("lock"), os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	var cout []byte
	for try := 1; ; try++ {
		// The C nsntrace races itself: its namespaced child looks for its
		// veth end (to bring it up) before the parent has created it, and
		// then libpcap fails with "That device is not up", or opens it
		// before it exists ("No such device exists"). Retry those start-up
		// races, which under a loaded make test it lost eight times in a
		// row once (each try fails at once); anything else is real.
		var err error
		cout, err = e.in.H.Command(cbin, "-d", e.in.UplinkH, "-o", cfile, "curl", "-sS", url).CombinedOutput()
		if err == nil {
			break
		}
		race := bytes.Contains(cout, []byte("That device is not up")) || bytes.Contains(cout, []byte("No such device exists"))
		if !race || try == 40 {
			t.Fatalf("the C nsntrace (try %d): %v: %s", try, err, cout)
		}
		t.Logf("the C nsntrace lost its start-up race (try %d), again", try)
		time.Sleep(time.Duration(try) * 20 * time.Millisecond)
	}
	t.Logf("the C nsntrace:\n%s", cout)
	li, err1 := lock.Stat()
	pi, err2 := os.Stat(rundir.Path("lock"))
	if err1 != nil || err2 != nil || !os.SameFile(li, pi) {
		t.Errorf("the C nsntrace removed %s (%v, %v): the lock of every other run", rundir.Path("lock"), err1, err2)
	}
	m := regexp.MustCompile(`Your IP address in this trace is ([0-9.]*[0-9])`).FindSubmatch(cout)
	if m == nil {
		t.Fatalf("the C nsntrace did not say its address")
	}
	r := e.trace("ours.pcapng", "curl", "-sS", url)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	theirs := conversations(t, cfile, string(m[1]))
	ours := conversations(t, r.file, r.addr.String())
	if len(theirs) == 0 {
		t.Fatal("the C nsntrace captured no conversation")
	}
	var missing []string
	for c := range theirs {
		if !ours[c] {
			missing = append(missing, c)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("conversations only the C nsntrace saw: %v (ours: %v)", missing, ours)
	}
	t.Logf("C: %v; ours: %v", theirs, ours)
	// The C nsntrace truncates at 8192 and writes pcap; ours pcapng at 262144.
	if count(t, r.file, "http.response.code == 200") != 1 || count(t, cfile, "http.response.code == 200") != 1 {
		t.Error("an HTTP response is missing from a trace")
	}
}

func TestStdoutReaderGoesAway(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	token := fmt.Sprintf("nsntrace-e2e-token-%d-%d", os.Getpid(), time.Now().UnixNano())
	// head reads a little of the capture and leaves; the program would
	// send forever. nsntrace must notice the broken pipe, stop the
	// program and clean up, without an error of its own.
	sh := fmt.Sprintf("%s -o - %s | head -c 64 >/dev/null; echo \"status ${PIPESTATUS[0]}\" >&2",
		shellQuote([]string{e.bin}), shellQuote(helper("token", token, "udp-forever", testbed.UpstreamAddr.String()+":7", "pipe")))
	cmd := e.in.H.Command("bash", "-c", sh)
	var se bytes.Buffer
	cmd.Stderr = &se
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bash: %v: %s", err, se.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("nsntrace did not end when its reader went away: %s", se.String())
	}
	t.Logf("stderr:\n%s", se.String())
	if want := fmt.Sprintf("status %d", 128+int(syscall.SIGTERM)); !strings.Contains(se.String(), want) {
		t.Errorf("want %q: the program ended by nsntrace's SIGTERM", want)
	}
	if !strings.Contains(se.String(), "reader of standard output went away") || strings.Contains(se.String(), "failed") {
		t.Error("the end was not reported as a clean stop")
	}
	e.clean(token)
}

// captureInterfaceUDP runs `nsntrace --interface` on H's uplink with the
// filter "udp port 7" into file, plus args, sends datagrams from H until
// the file is larger than min bytes, stops it with SIGINT and returns its
// stderr.
func captureInterfaceUDP(t *testing.T, e *e2e, file string, min int64, args ...string) *bytes.Buffer {
	t.Helper()
	cmd := e.cmd(append([]string{"--interface", e.in.UplinkH, "-U", "-f", "udp port 7", "-o", file}, args...)...)
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Send until the capture has seen a datagram: its start-up time is
	// not ours to guess. That one may have been the echo of an exchange
	// the capture joined half-way, so one more exchange follows, all of
	// which the running capture sees.
	exchange := func() {
		e.in.H.Run(t, "env", helperEnv+"=1", os.Args[0], "udp", testbed.UpstreamAddr.String()+":7", "via-interface")
		time.Sleep(200 * time.Millisecond)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		exchange()
		if fi, err := os.Stat(file); err == nil && fi.Size() > min || time.Now().After(deadline) {
			break
		}
	}
	exchange()
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("--interface %v: %v: %s", args, err, se.String())
	}
	t.Logf("stderr:\n%s", se.String())
	return &se
}

func TestInterfaceCapture(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	file := filepath.Join(e.dir, "iface.pcap")
	se := captureInterfaceUDP(t, e, file, 24)
	m := regexp.MustCompile(`(\d+) packets? captured\n(\d+) packets? received by filter\n(\d+) packets? dropped by kernel`).FindStringSubmatch(se.String())
	if m == nil {
		t.Fatalf("no tcpdump-style counters on stderr")
	}
	info := tsharkOK(t, file)
	if !regexp.MustCompile(`File type:\s+(nsec)?pcap\n`).MatchString(info) {
		t.Errorf("a .pcap name did not give classic pcap:\n%s", info)
	}
	n := count(t, file, "")
	if fmt.Sprint(n) != m[1] || n < 2 || n != count(t, file, `udp.port == 7 && udp.payload == "via-interface"`) {
		t.Errorf("%d frames (%d matching), stderr says %s captured", n, count(t, file, `udp.payload == "via-interface"`), m[1])
	}
}

func TestResolvConf(t *testing.T) {
	t.Parallel()
	plain := newE2E(t, nil)
	loop := newE2E(t, &testbed.InternetConfig{LoopbackResolver: true})
	gw := regexp.MustCompile(`relayed from ([0-9.]*[0-9]) `)
	for _, tc := range []struct {
		name  string
		e     *e2e
		flags []string
		check func(t *testing.T, r result, conf string)
	}{
		{"host resolver reachable: the host's file", plain, nil, func(t *testing.T, r result, conf string) {
			if conf != "nameserver "+testbed.UpstreamAddr.String()+"\n" {
				t.Errorf("resolv.conf changed although the resolver is reachable:\n%s", conf)
			}
		}},
		{"loopback resolver: the relay", loop, nil, func(t *testing.T, r result, conf string) {
			m := gw.FindStringSubmatch(r.stderr)
			if m == nil {
				t.Fatalf("no relay announced: %s", r.stderr)
			}
			rc := conf[strings.Index(conf, "\n")+1:] // after our comment line
			if want := "nameserver " + m[1] + "\noptions edns0 trust-ad\n"; rc != want {
				t.Errorf("resolv.conf:\n%s\nwant after the comment:\n%s", conf, want)
			}
		}},
		// Only the file is checked: nothing may query a public resolver.
		{"--use-public-dns", loop, []string{"--use-public-dns"}, func(t *testing.T, r result, conf string) {
			var ns []string
			for _, l := range strings.Split(conf, "\n") {
				if f := strings.Fields(l); len(f) == 2 && f[0] == "nameserver" {
					ns = append(ns, f[1])
				}
			}
			if want := []string{"9.9.9.9", "1.1.1.1", "8.8.8.8", "208.67.222.222"}; strings.Join(ns, " ") != strings.Join(want, " ") {
				t.Errorf("nameservers %v, want %v:\n%s", ns, want, conf)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &e2e{t: t, in: tc.e.in, bin: tc.e.bin, dir: t.TempDir()}
			r := e.trace("rc.pcapng", append(tc.flags, "cat", "/etc/resolv.conf")...)
			if r.code != 0 {
				t.Fatalf("exit %d", r.code)
			}
			tc.check(t, r, r.stdout)
			if n := count(t, r.file, "ip"); n != 0 {
				t.Errorf("cat sent %d IP packets", n)
			}
		})
	}
	// The host's own file is untouched.
	if b, err := os.ReadFile(filepath.Join("/etc/netns", loop.in.H.Name, "resolv.conf")); err != nil || !strings.HasPrefix(string(b), "nameserver "+testbed.StubDNSAddr) {
		t.Errorf("host resolv.conf now %q (%v)", b, err)
	}
}

// TestBadDevice checks that -d naming a device no traffic can leave by is
// refused before anything is made: loopback, a device that is down, the
// veth of another run (masquerade would miss, and un-NATed packets leave).
func TestBadDevice(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	// In H, which goes with the test: a run's veth (up) and a pair that is down.
	e.in.H.Run(t, "ip", "link", "add", "nsn1zx7", "type", "veth", "peer", "name", "other7")
	e.in.H.Run(t, "ip", "link", "set", "nsn1zx7", "up")
	e.in.H.Run(t, "ip", "link", "add", "down0", "type", "veth", "peer", "name", "down1")
	for _, tc := range []struct{ dev, msg string }{
		{"lo", "nsntrace: -d lo: device lo is the loopback device, which never leaves the host: name the device"},
		{"down0", "nsntrace: -d down0: device down0 is down: name the device"},
		{"nsn1zx7", "nsntrace: -d nsn1zx7: device nsn1zx7 is the veth of another nsntrace run: name the device"},
	} {
		t.Run(tc.dev, func(t *testing.T) {
			e := &e2e{t: t, in: e.in, bin: e.bin, dir: t.TempDir()}
			r := e.trace("dev.pcapng", "-d", tc.dev, "true")
			if r.code != exitFailure || !strings.HasPrefix(r.stderr, tc.msg) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want %d and one line %q...", r.code, r.stderr, exitFailure, tc.msg)
			}
			if _, err := os.Stat(r.file); err == nil {
				t.Error("a refused run left its output file")
			}
			if out := strings.TrimSpace(e.in.H.Run(t, "nft", "list", "tables")); out != "" {
				t.Errorf("left behind in H: nft tables %s", out)
			}
		})
	}
}
