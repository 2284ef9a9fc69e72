package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/rundir"
	"github.com/nsntrace/nsntrace/internal/testbed"
)

// startForever starts a trace, with flags, of a program that sends one
// datagram, says it is ready and then sleeps for an hour, and waits until
// it is ready. The caller ends it; stderr collects nsntrace's messages.
func (e *e2e) startForever(file, token string, stderr io.Writer, flags ...string) *exec.Cmd {
	t := e.t
	t.Helper()
	ready := filepath.Join(e.dir, "ready")
	cmd := e.cmd(append(append(flags, "-o", file),
		helper("token", token, "udp", testbed.UpstreamAddr.String()+":7", "x", "touch", ready, "sleep", "1h")...)...)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the program never got going")
		}
	}
}

// waitEnd waits for nsntrace to end and returns its exit status.
func waitEnd(t *testing.T, cmd *exec.Cmd, why string) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(t, err)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("nsntrace did not end after %s", why)
	}
	return -1
}

// TestStopSignals sends each signal a person or a supervisor sends to a
// trace of a program that runs forever (the C nsntrace's
// check_cleanup.sh list, and ILL, as kill(1) sends them): each ends it like
// ctrl-c, with exit status 128+N, one line naming the signal, a complete
// file with its statistics block, and nothing left behind. QUIT, ABRT and
// SEGV used to end it with Go's goroutine dump and exit status 2.
func TestStopSignals(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGABRT,
		syscall.SIGSEGV, syscall.SIGTERM, syscall.SIGILL} {
		t.Run(sig.String(), func(t *testing.T) {
			e := &e2e{t: t, in: e.in, bin: e.bin, dir: t.TempDir()}
			token := fmt.Sprintf("nsntrace-e2e-sig-%d-%d", os.Getpid(), time.Now().UnixNano())
			file := filepath.Join(e.dir, "s.pcapng")
			var se bytes.Buffer
			cmd := e.startForever(file, token, &se)
			cmd.Process.Signal(sig) // `ip netns exec` execs nsntrace: same pid
			code := waitEnd(t, cmd, sig.String())
			t.Logf("stderr:\n%s", se.String())
			if want := 128 + int(sig); code != want {
				t.Errorf("exit %d after %v, want %d", code, sig, want)
			}
			name := unix.SignalName(sig)
			if !strings.Contains(se.String(), name+": stopping ") {
				t.Errorf("no line naming %s", name)
			}
			if strings.Contains(se.String(), "goroutine ") {
				t.Error("a goroutine dump on stderr")
			}
			if c := readISB(t, file); c.blocks != 1 || c.packets < 2 {
				t.Errorf("file: %d statistics blocks, %d packets; want 1 and the datagram and its echo", c.blocks, c.packets)
			}
			if n := count(t, file, "udp.port == 7"); n != 2 {
				t.Errorf("tshark reads %d packets of the exchange, want 2", n)
			}
			e.clean(token)
		})
	}
}

// TestUserSignals: SIGUSR1 prints the counters without stopping, SIGUSR2
// flushes the file so that tshark reads the packets so far while the
// trace goes on.
func TestUserSignals(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	e = &e2e{t: t, in: e.in, bin: e.bin, dir: t.TempDir()}
	token := fmt.Sprintf("nsntrace-e2e-usr-%d-%d", os.Getpid(), time.Now().UnixNano())
	file := filepath.Join(e.dir, "u.pcapng")
	var se testbed.SyncBuffer
	cmd := e.startForever(file, token, &se)
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		waitEnd(t, cmd, "SIGTERM")
		e.clean(token)
	}()
	time.Sleep(300 * time.Millisecond) // past the block timeout: the echo is handed over

	line := counterLine(cmd, &se, file)
	var n int
	if _, err := fmt.Sscanf(line, "nsntrace: %d packets captured", &n); err != nil || n < 2 {
		t.Errorf("SIGUSR1: counter line %q (%v); want at least the datagram and its echo\n%s", line, err, se.String())
	}

	cmd.Process.Signal(syscall.SIGUSR2)
	var got int
	for deadline := time.Now().Add(10 * time.Second); got < 2 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got = readSoFar(file)
	}
	if got != 2 {
		t.Errorf("after SIGUSR2 tshark reads %d packets of the exchange from the file being written, want 2", got)
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the trace ended on SIGUSR1/SIGUSR2: %v", err)
	}
}

// TestKilled: SIGKILL of nsntrace itself leaves nothing behind that
// matters: the kernel removes the owned nft table with its socket, the
// PID namespace's init dies of PDEATHSIG and takes the program with it,
// and the veth dies with the namespace. What the kernel cannot undo, IP
// forwarding the run turned on, is recorded under /run; the next run's
// sweep restores it, removes the record and says so.
func TestKilled(t *testing.T) {
	t.Parallel()
	e := newE2E(t, &testbed.InternetConfig{NoIPForward: true})
	e = &e2e{t: t, in: e.in, bin: e.bin, dir: t.TempDir()}
	token := fmt.Sprintf("nsntrace-e2e-kill-%d-%d", os.Getpid(), time.Now().UnixNano())
	var se bytes.Buffer
	cmd := e.startForever(filepath.Join(e.dir, "k.pcapng"), token, &se)
	pid := cmd.Process.Pid
	cmd.Process.Signal(syscall.SIGKILL)
	waitEnd(t, cmd, "SIGKILL")
	// The kernel tears down asynchronously: give it a moment.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		links := e.in.H.Run(t, "ip", "-br", "link")
		tables := strings.TrimSpace(e.in.H.Run(t, "nft", "list", "tables"))
		if strings.Count(strings.TrimSpace(links), "\n") == 1 && tables == "" {
			break
		}
	}
	e.clean(token)
	// The record of H: another run's sweep (tests run in parallel) may
	// already have forgotten the dead run in it, but not what it saved.
	rec := nsRecord(t, e.in.H.Name)
	if _, err := os.Stat(filepath.Join(rec, "orig-ipv4")); err != nil {
		t.Fatalf("no forwarding record of the killed run %d: %v: the test does not test the sweep", pid, err)
	}
	if v := strings.TrimSpace(e.in.H.Run(t, "sysctl", "-n", "net.ipv4.ip_forward")); v != "1" {
		t.Fatalf("ip_forward %s after the killed run, want it still on", v)
	}
	r := e.trace("next.pcapng", "true")
	if r.code != 0 || !strings.Contains(r.stderr, "Leftovers of crashed runs: restored ") {
		t.Errorf("the next run: exit %d, no word of the leftovers it removed:\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(rec); err == nil || hasRecord(t, pid) {
		t.Errorf("the killed run's record %s is still there after the next run's sweep", rec)
	}
	if v := strings.TrimSpace(e.in.H.Run(t, "sysctl", "-n", "net.ipv4.ip_forward")); v != "0" {
		t.Errorf("ip_forward %s after the sweep, want 0 as before the killed run", v)
	}
	e.clean("")
}

// nsRecord returns the forwarding record directory of the named network
// namespace (DEV-INO-COOKIE, by its inode).
func nsRecord(t *testing.T, ns string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join("/run/netns", ns), &st); err != nil {
		t.Fatal(err)
	}
	m, err := filepath.Glob(filepath.Join(rundir.Path("forward"), fmt.Sprintf("*-%d-*", st.Ino)))
	if err != nil || len(m) != 1 {
		t.Fatalf("forwarding records of %s (inode %d): %v %v", ns, st.Ino, m, err)
	}
	return m[0]
}

// hasRecord reports whether a forwarding record of the run with pid is
// under /run/nsntrace-state/forward (records are named PID-START).
func hasRecord(t *testing.T, pid int) bool {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(rundir.Path("forward"), "*", fmt.Sprintf("%d-*", pid)))
	if err != nil {
		t.Fatal(err)
	}
	return len(m) > 0
}

// TestInterfaceSignals: --interface mode handles the signals a traced
// run does. SIGUSR2 flushes the file, so that tshark reads what was
// captured so far while it goes on; SIGUSR1 prints the counters; QUIT,
// ABRT, a SEGV sent with kill, and HUP end it as ctrl-c does (status 0
// in this mode, as for tcpdump) with a complete file and no goroutine
// dump.
func TestInterfaceSignals(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	for _, sig := range []syscall.Signal{syscall.SIGQUIT, syscall.SIGABRT, syscall.SIGSEGV, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "i.pcapng")
			cmd := e.cmd("--interface", e.in.UplinkH, "-f", "udp port 7", "-o", file)
			var se testbed.SyncBuffer
			cmd.Stderr = &se
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ended := false
			defer func() {
				if !ended {
					cmd.Process.Kill()
					cmd.Wait()
				}
			}()
			// An exchange, a block timeout, a flush: until tshark reads
			// a whole exchange from the file being written (the capture's
			// start-up is not ours to guess).
			got := 0
			for deadline := time.Now().Add(30 * time.Second); got < 2 && time.Now().Before(deadline); {
				e.in.H.Run(t, "env", helperEnv+"=1", os.Args[0], "udp", testbed.UpstreamAddr.String()+":7", "iface-signals")
				time.Sleep(200 * time.Millisecond)
				cmd.Process.Signal(syscall.SIGUSR2)
				time.Sleep(100 * time.Millisecond)
				got = readSoFar(file)
			}
			if got < 2 {
				t.Fatalf("after SIGUSR2 tshark reads %d packets of the exchanges from the file being written, want 2 or more\n%s", got, se.String())
			}
			if counterLine(cmd, &se, file) == "" {
				t.Errorf("SIGUSR1 printed no counters\n%s", se.String())
			}
			cmd.Process.Signal(sig)
			code := waitEnd(t, cmd, sig.String())
			ended = true
			t.Logf("stderr:\n%s", se.String())
			if code != 0 {
				t.Errorf("exit %d after %v, want 0", code, sig)
			}
			if strings.Contains(se.String(), "goroutine ") {
				t.Error("a goroutine dump on stderr")
			}
			if c := readISB(t, file); c.blocks != 1 || c.packets < 2 {
				t.Errorf("file: %d statistics blocks, %d packets; want 1 and the exchanges", c.blocks, c.packets)
			}
		})
	}
}

// counterLine sends cmd SIGUSR1 and returns the counter line it prints on
// se for file, or "" if none comes within 10 s.
func counterLine(cmd *exec.Cmd, se *testbed.SyncBuffer, file string) string {
	cmd.Process.Signal(syscall.SIGUSR1)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(se.String(), "\n") {
			if strings.Contains(l, "dropped by kernel, writing "+file) {
				return l
			}
		}
	}
	return ""
}

// readSoFar is how many packets of the UDP echo exchanges tshark reads
// from file, which may still be being written.
func readSoFar(file string) int {
	out, _ := exec.Command("tshark", "-r", file, "-Y", "udp.port == 7").Output()
	return strings.Count(string(out), "\n")
}
