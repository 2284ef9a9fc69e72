package child_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/child"
	"github.com/nsntrace/nsntrace/internal/testbed"
)

// envHelper makes the test binary act as one of the helpers below instead
// of running tests.
const envHelper = "NSNTRACE_CHILD_TEST_HELPER"

// probeDir holds a copy of the test binary that any user may execute (the
// build directory is root's alone), used as the traced program.
var probeDir string

func TestMain(m *testing.M) {
	child.MaybeRun()
	switch mode := os.Getenv(envHelper); mode {
	case "":
	case "probe":
		os.Exit(probe())
	case "wait-term":
		os.Exit(waitTerm())
	case "intermediate":
		os.Exit(intermediate())
	case "resolv-symlink":
		os.Exit(resolvSymlink())
	default:
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", mode)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// report is what the probe program sees from inside.
type report struct {
	Pid, PPid      int
	NetNS          string
	Links          []string
	Procs          []int
	FDs            []int
	Uid, Gid       string
	Groups, CapEff string
	CapPrm, CapAmb string
	Home, User     string
	Logname        string
	Marker         bool
	ResolvConf     string
	ResolvMode     string
}

// probe runs as the traced program and prints a report on stdout.
func probe() int {
	var r report
	// First, before the Go runtime opens anything of its own (an epoll
	// fd comes with the first pollable file): the fds we inherited.
	dfd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	buf := make([]byte, 4096)
	for {
		n, err := unix.ReadDirent(dfd, buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if n == 0 {
			break
		}
		var names []string
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
		for _, s := range names {
			if fd, err := strconv.Atoi(s); err == nil && fd != dfd {
				r.FDs = append(r.FDs, fd)
			}
		}
	}
	unix.Close(dfd)
	slices.Sort(r.FDs)

	r.Pid, r.PPid = os.Getpid(), os.Getppid()
	r.NetNS, _ = os.Readlink("/proc/self/ns/net")
	ifs, err := net.Interfaces()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, i := range ifs {
		r.Links = append(r.Links, i.Name)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			r.Procs = append(r.Procs, pid)
		}
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "Uid":
			r.Uid = v
		case "Gid":
			r.Gid = v
		case "Groups":
			r.Groups = v
		case "CapEff":
			r.CapEff = v
		case "CapPrm":
			r.CapPrm = v
		case "CapAmb":
			r.CapAmb = v
		}
	}
	r.Home, r.User, r.Logname = os.Getenv("HOME"), os.Getenv("USER"), os.Getenv("LOGNAME")
	_, r.Marker = os.LookupEnv("_NSNTRACE_CHILD")
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		r.ResolvConf = string(b)
	} else {
		r.ResolvConf = "error: " + err.Error()
	}
	if fi, err := os.Lstat("/etc/resolv.conf"); err == nil {
		r.ResolvMode = fi.Mode().String()
	}
	if err := json.NewEncoder(os.Stdout).Encode(&r); err != nil {
		return 1
	}
	return 0
}

// waitTerm says "ready" and exits 42 on SIGTERM.
func waitTerm() int {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	fmt.Println("ready")
	<-c
	return 42
}

// probeBinary returns a copy of the test binary that any user may execute
// (the build directory is root's alone), to run as the traced program.
func probeBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "probe")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// lookPath resolves a program as the caller of child.Start must.
func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err = filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run is the result of one program run.
type run struct {
	p              *child.Process
	status         child.Status
	stdout, stderr string
}

// start starts cfg's program with stdout and stderr in files and stdin
// from /dev/null; the process is closed at the end of the test.
func start(t *testing.T, cfg *child.Config) (*child.Process, func() run) {
	t.Helper()
	testbed.RequirePrivileged(t)
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	errf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { errf.Close() })
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { null.Close() })
	if cfg.Stdin == nil {
		cfg.Stdin = null
	}
	if cfg.Stdout == nil {
		cfg.Stdout = out
	}
	cfg.Stderr = errf
	p, err := child.Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p, func() run {
		t.Helper()
		st, err := p.Wait()
		o, _ := os.ReadFile(out.Name())
		e, _ := os.ReadFile(errf.Name())
		if err != nil {
			t.Fatalf("Wait: %v (stderr: %s)", err, e)
		}
		return run{p: p, status: st, stdout: string(o), stderr: string(e)}
	}
}

// runProgram starts, releases and waits for a program.
func runProgram(t *testing.T, cfg *child.Config) run {
	t.Helper()
	p, wait := start(t, cfg)
	if err := p.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	return wait()
}

// probeEnv is the probe's environment. The GODEBUG settings stop the Go
// runtime from keeping cgroup files open (Go >= 1.25 watches the CPU
// quota), which would otherwise show up among the probe's fds.
func probeEnv(extra ...string) []string {
	return append([]string{envHelper + "=probe", "GODEBUG=containermaxprocs=0,updatemaxprocs=0"}, extra...)
}

func probeConfig(t *testing.T) *child.Config {
	bin := probeBinary(t)
	return &child.Config{
		Path: bin,
		Args: []string{"probe"},
		Env:  probeEnv("HOME=/root", "USER=root", "LOGNAME=root", "_NSNTRACE_CHILD=1"),
	}
}

func runProbe(t *testing.T, cfg *child.Config) (report, run) {
	t.Helper()
	r := runProgram(t, cfg)
	if r.status.ExitCode() != 0 {
		t.Fatalf("probe: %v\nstderr: %s", r.status, r.stderr)
	}
	var rep report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("probe output %q: %v", r.stdout, err)
	}
	return rep, r
}

// leakFDs opens fds without O_CLOEXEC, as careless code in the caller
// might, for the duration of the test.
func leakFDs(t *testing.T) []int {
	t.Helper()
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], 0); err != nil {
		t.Fatal(err)
	}
	fds := []int{fd, p[0], p[1]}
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	return fds
}

func TestNamespaces(t *testing.T) {
	testbed.RequirePrivileged(t)
	leaked := leakFDs(t)
	ownNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	cfg := probeConfig(t)
	p, wait := start(t, cfg)
	ns, err := p.NetNS()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(ns.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	childNS := fmt.Sprintf("net:[%d]", st.Ino)
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	r := wait()
	if r.status.ExitCode() != 0 {
		t.Fatalf("probe: %v\nstderr: %s", r.status, r.stderr)
	}
	var rep report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("probe output %q: %v", r.stdout, err)
	}
	if rep.NetNS == ownNS || rep.NetNS != childNS {
		t.Errorf("program's netns %s; test's %s, NetNS() %s", rep.NetNS, ownNS, childNS)
	}
	if !slices.Equal(rep.Links, []string{"lo"}) {
		t.Errorf("program sees links %q, want only lo", rep.Links)
	}
	// The init's threads take the first pids of the namespace, so the
	// program's pid is small but not 2.
	if rep.Pid <= 1 || rep.PPid != 1 {
		t.Errorf("program has pid %d, ppid %d; want a pid > 1 and ppid 1 (the init)", rep.Pid, rep.PPid)
	}
	if !slices.Equal(rep.Procs, []int{1, rep.Pid}) {
		t.Errorf("program's /proc lists %v, want [1 %d] (a /proc of its PID namespace)", rep.Procs, rep.Pid)
	}
	if !slices.Equal(rep.FDs, []int{0, 1, 2}) {
		t.Errorf("program has fds %v, want [0 1 2] (test leaked %v)", rep.FDs, leaked)
	}
	if rep.Marker {
		t.Error("program's environment has the child marker")
	}
	if rep.Home != "/root" || rep.User != "root" || rep.Logname != "root" {
		t.Errorf("HOME, USER, LOGNAME = %q, %q, %q; want the Env given", rep.Home, rep.User, rep.Logname)
	}
	if !strings.HasPrefix(rep.CapEff, "000001ff") {
		t.Errorf("root program has CapEff %s, want the full set", rep.CapEff)
	}
}

func TestUser(t *testing.T) {
	testbed.RequirePrivileged(t)
	leaked := leakFDs(t)
	u, err := child.LookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	byID, err := child.LookupUser(strconv.Itoa(int(u.Uid)))
	if err != nil {
		t.Fatal(err)
	}
	if byID.Name != "nobody" || byID.Uid != u.Uid || byID.Gid != u.Gid {
		t.Errorf("LookupUser(%d) = %+v, LookupUser(nobody) = %+v", u.Uid, byID, u)
	}
	cfg := probeConfig(t)
	cfg.User = u
	rep, _ := runProbe(t, cfg)
	uid, gid := strconv.Itoa(int(u.Uid)), strconv.Itoa(int(u.Gid))
	if want := strings.Join([]string{uid, uid, uid, uid}, "\t"); rep.Uid != want {
		t.Errorf("Uid: %q, want %q", rep.Uid, want)
	}
	if want := strings.Join([]string{gid, gid, gid, gid}, "\t"); rep.Gid != want {
		t.Errorf("Gid: %q, want %q", rep.Gid, want)
	}
	var groups []string
	for _, g := range u.Groups {
		groups = append(groups, strconv.Itoa(int(g)))
	}
	if got := strings.Fields(rep.Groups); !slices.Equal(got, groups) {
		t.Errorf("Groups: %q, want %q", got, groups)
	}
	if rep.CapEff != "0000000000000000" || rep.CapPrm != "0000000000000000" || rep.CapAmb != "0000000000000000" {
		t.Errorf("CapEff %s, CapPrm %s, CapAmb %s; want all 0000000000000000", rep.CapEff, rep.CapPrm, rep.CapAmb)
	}
	if rep.Home != u.Home || rep.User != "nobody" || rep.Logname != "nobody" {
		t.Errorf("HOME, USER, LOGNAME = %q, %q, %q; want %q, nobody, nobody", rep.Home, rep.User, rep.Logname, u.Home)
	}
	if !slices.Equal(rep.FDs, []int{0, 1, 2}) {
		t.Errorf("program has fds %v, want [0 1 2] (test leaked %v)", rep.FDs, leaked)
	}
}

// TestUserRoot checks that a user whose uid is 0 runs, as the -u help
// says, without capabilities: setuid(0) keeps them and execve as root
// would give back the bounding set.
func TestUserRoot(t *testing.T) {
	testbed.RequirePrivileged(t)
	for _, name := range []string{"root", "0"} {
		u, err := child.LookupUser(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := probeConfig(t)
		cfg.User = u
		rep, _ := runProbe(t, cfg)
		if !strings.HasPrefix(rep.Uid, "0\t") {
			t.Errorf("-u %s: Uid %q, want 0", name, rep.Uid)
		}
		if rep.CapEff != "0000000000000000" || rep.CapPrm != "0000000000000000" || rep.CapAmb != "0000000000000000" {
			t.Errorf("-u %s: CapEff %s, CapPrm %s, CapAmb %s; want all 0000000000000000", name, rep.CapEff, rep.CapPrm, rep.CapAmb)
		}
	}
}

// TestUserNumeric checks that a UID without a passwd entry runs as itself,
// with its own number as gid and no groups.
func TestUserNumeric(t *testing.T) {
	testbed.RequirePrivileged(t)
	u, err := child.LookupUser("4000000000")
	if err != nil {
		t.Fatal(err)
	}
	cfg := probeConfig(t)
	cfg.User = u
	rep, _ := runProbe(t, cfg)
	if want := "4000000000\t4000000000\t4000000000\t4000000000"; rep.Uid != want || rep.Gid != want {
		t.Errorf("Uid %q, Gid %q; want %q", rep.Uid, rep.Gid, want)
	}
	if rep.Groups != "" || rep.CapEff != "0000000000000000" || rep.CapPrm != "0000000000000000" {
		t.Errorf("Groups %q, CapEff %s, CapPrm %s; want none", rep.Groups, rep.CapEff, rep.CapPrm)
	}
	if rep.Home != "/" || rep.User != "4000000000" {
		t.Errorf("HOME %q, USER %q; want / and 4000000000", rep.Home, rep.User)
	}
}

func TestExitStatus(t *testing.T) {
	testbed.RequirePrivileged(t)
	sh := lookPath(t, "sh")
	notExec := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		path   string
		args   []string
		code   int
		signal syscall.Signal
		is     error
		exit   int
	}{
		{name: "zero", path: sh, args: []string{"sh", "-c", "exit 0"}},
		{name: "three", path: sh, args: []string{"sh", "-c", "exit 3"}, code: 3, exit: 3},
		{name: "sigkill", path: sh, args: []string{"sh", "-c", "kill -9 $$"}, signal: syscall.SIGKILL, exit: 137},
		{name: "missing", path: "/nonexistent/nsntrace-test", args: []string{"x"}, is: os.ErrNotExist, exit: 127},
		{name: "not-executable", path: notExec, args: []string{"x"}, is: os.ErrPermission, exit: 126},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runProgram(t, &child.Config{Path: tc.path, Args: tc.args})
			st := r.status
			if tc.is != nil {
				if !errors.Is(st.ExecError, tc.is) {
					t.Errorf("ExecError = %v, want one that is %v", st.ExecError, tc.is)
				}
				var pe *os.PathError
				if !errors.As(st.ExecError, &pe) || pe.Path != tc.path {
					t.Errorf("ExecError = %#v, want a *os.PathError for %s", st.ExecError, tc.path)
				}
			} else if st.ExecError != nil {
				t.Errorf("ExecError = %v", st.ExecError)
			}
			if st.Code != tc.code || st.Signal != tc.signal || st.ExitCode() != tc.exit {
				t.Errorf("status %+v (ExitCode %d), want code %d, signal %d, ExitCode %d",
					st, st.ExitCode(), tc.code, tc.signal, tc.exit)
			}
		})
	}
}

// pidNS returns the PID namespace of a host pid, as readlink shows it.
func pidNS(t *testing.T, pid int) string {
	t.Helper()
	ns, err := testbed.PIDNamespace(pid)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestOrphansDie(t *testing.T) {
	sh := lookPath(t, "sh")
	p, wait := start(t, &child.Config{Path: sh, Args: []string{"sh", "-c", "sleep 100 & echo $!; exit 3"}})
	ns := pidNS(t, p.Pid())
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	r := wait()
	if r.status.Code != 3 || r.status.ExitCode() != 3 {
		t.Errorf("status %v, want exit status 3", r.status)
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(r.stdout)); err != nil || pid < 2 {
		t.Errorf("background sleep's pid %q, want a pid of the namespace", r.stdout)
	}
	// Wait returns after the kernel has killed and reaped the rest of the
	// namespace, the background sleep included.
	if left := testbed.LiveInPIDNamespace(t, ns); len(left) > 0 {
		t.Errorf("processes left in the PID namespace after Wait: %v", left)
	}
}

func TestReleaseBarrier(t *testing.T) {
	sh := lookPath(t, "sh")
	flag := filepath.Join(t.TempDir(), "ran")
	p, wait := start(t, &child.Config{Path: sh, Args: []string{"sh", "-c", `touch "$0"`, flag}})
	// Start has returned: the init is up and ready, but the program must
	// not exist yet.
	if kids := testbed.Children(t, p.Pid()); len(kids) != 0 {
		t.Errorf("init %d has children %v before Release", p.Pid(), kids)
	}
	if _, err := os.Stat(flag); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("program ran before Release: stat %s: %v", flag, err)
	}
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(); err == nil {
		t.Error("second Release succeeded")
	}
	if r := wait(); r.status.ExitCode() != 0 {
		t.Fatalf("program: %v: %s", r.status, r.stderr)
	}
	if _, err := os.Stat(flag); err != nil {
		t.Errorf("program did not run after Release: %v", err)
	}
}

func TestSignal(t *testing.T) {
	testbed.RequirePrivileged(t)
	bin := probeBinary(t)
	for _, tc := range []struct {
		name   string
		direct bool // kill(2) the init rather than Process.Signal
		sig    syscall.Signal
		exit   int
	}{
		{"forward-term", false, syscall.SIGTERM, 42},
		{"direct-term", true, syscall.SIGTERM, 42},
		{"forward-hup", false, syscall.SIGHUP, 128 + int(syscall.SIGHUP)},
		{"forward-int", false, syscall.SIGINT, 128 + int(syscall.SIGINT)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pr.Close()
			p, wait := start(t, &child.Config{Path: bin, Args: []string{"probe"}, Env: []string{envHelper + "=wait-term"}, Stdout: pw})
			pw.Close()
			if err := p.Signal(tc.sig); err == nil {
				t.Error("Signal before Release succeeded")
			}
			if err := p.Release(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(pr).ReadString('\n')
			if err != nil || line != "ready\n" {
				t.Fatalf("program said %q, %v", line, err)
			}
			if tc.direct {
				err = syscall.Kill(p.Pid(), tc.sig)
			} else {
				err = p.Signal(tc.sig)
			}
			if err != nil {
				t.Fatal(err)
			}
			r := wait()
			if r.status.ExitCode() != tc.exit {
				t.Errorf("status %v (ExitCode %d), want ExitCode %d", r.status, r.status.ExitCode(), tc.exit)
			}
			if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("Signal after the end: %v, want os.ErrProcessDone", err)
			}
		})
	}
}

func TestKill(t *testing.T) {
	testbed.RequirePrivileged(t)
	sleep := lookPath(t, "sleep")
	t.Run("before-release", func(t *testing.T) {
		p, wait := start(t, &child.Config{Path: sleep, Args: []string{"sleep", "1000"}})
		ns := pidNS(t, p.Pid())
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := p.Release(); err == nil {
			t.Error("Release of a killed child succeeded")
		}
		if r := wait(); r.status.Signal != syscall.SIGKILL || r.status.ExitCode() != 137 {
			t.Errorf("status %v, want killed by SIGKILL", r.status)
		}
		if left := testbed.LiveInPIDNamespace(t, ns); len(left) > 0 {
			t.Errorf("processes left: %v", left)
		}
	})
	t.Run("running", func(t *testing.T) {
		p, wait := start(t, &child.Config{Path: sleep, Args: []string{"sleep", "1000"}})
		ns := pidNS(t, p.Pid())
		if err := p.Release(); err != nil {
			t.Fatal(err)
		}
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if r := wait(); r.status.Signal != syscall.SIGKILL || r.status.ExitCode() != 137 {
			t.Errorf("status %v, want killed by SIGKILL", r.status)
		}
		if left := testbed.LiveInPIDNamespace(t, ns); len(left) > 0 {
			t.Errorf("processes left: %v", left)
		}
		if err := p.Kill(); err != nil {
			t.Errorf("Kill after the end: %v", err)
		}
	})
	t.Run("external", func(t *testing.T) {
		// Someone else kills the init: the parent must notice, not hang.
		p, _ := start(t, &child.Config{Path: sleep, Args: []string{"sleep", "1000"}})
		if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := p.Release(); err == nil {
			t.Error("Release of a dead child succeeded")
		}
		if st, err := p.Wait(); err == nil {
			t.Errorf("Wait of a child that died unasked = %v, nil; want an error", st)
		}
	})
	t.Run("close", func(t *testing.T) {
		testbed.RequirePrivileged(t)
		p, err := child.Start(&child.Config{Path: sleep, Args: []string{"sleep", "1000"}})
		if err != nil {
			t.Fatal(err)
		}
		ns := pidNS(t, p.Pid())
		if err := p.Release(); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := p.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
		if left := testbed.LiveInPIDNamespace(t, ns); len(left) > 0 {
			t.Errorf("processes left after Close: %v", left)
		}
		if _, err := p.NetNS(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("NetNS after Close: %v, want os.ErrClosed", err)
		}
	})
}

func TestStartErrors(t *testing.T) {
	testbed.RequirePrivileged(t)
	sh := lookPath(t, "sh")
	for _, tc := range []struct {
		name string
		cfg  *child.Config
		is   error
	}{
		{"nil", nil, nil},
		{"relative", &child.Config{Path: "sh", Args: []string{"sh"}}, nil},
		{"no-args", &child.Config{Path: sh}, nil},
		{"no-dir", &child.Config{Path: sh, Args: []string{"sh"}, Dir: "/nonexistent/nsntrace"}, os.ErrNotExist},
	} {
		p, err := child.Start(tc.cfg)
		if err == nil {
			p.Close()
			t.Errorf("%s: Start succeeded", tc.name)
			continue
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: Start: %v, want one that is %v", tc.name, err, tc.is)
		}
	}
}

func TestResolvConf(t *testing.T) {
	testbed.RequirePrivileged(t)
	before, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	mountsBefore := mountsAt(t, "/etc/resolv.conf", "/proc", "/etc")
	u, err := child.LookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	const content = "nameserver 192.0.2.53\noptions edns0\n"
	cfg := probeConfig(t)
	cfg.User = u
	cfg.ResolvConf = []byte(content)
	rep, _ := runProbe(t, cfg)
	if rep.ResolvConf != content {
		t.Errorf("program (as nobody) reads /etc/resolv.conf %q, want %q", rep.ResolvConf, content)
	}
	if !slices.Equal(rep.Procs, []int{1, rep.Pid}) {
		t.Errorf("program's /proc lists %v, want [1 %d]", rep.Procs, rep.Pid)
	}
	after, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("host /etc/resolv.conf changed: %q -> %q", before, after)
	}
	// Other tests of the tree may mount things meanwhile (/run/netns), so
	// only the mount points the child uses are compared.
	if after := mountsAt(t, "/etc/resolv.conf", "/proc", "/etc"); !slices.Equal(after, mountsBefore) {
		t.Errorf("the test's mounts changed:\n%q\n---\n%q", mountsBefore, after)
	}
}

// mountsAt returns the lines of the test's /proc/self/mountinfo whose
// mount point is one of points.
func mountsAt(t *testing.T, points ...string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && slices.Contains(points, f[4]) {
			lines = append(lines, l)
		}
	}
	return lines
}

// symlinkResult is what the resolv-symlink helper reports.
type symlinkResult struct {
	Inside     report
	LinkAfter  string
	StubAfter  string
	HelperErr  string
	StubBefore string
}

// resolvSymlink runs in a mount namespace of its own (private, made by the
// test), where it makes /etc/resolv.conf a symbolic link as
// systemd-resolved does, to $STUB (which may not exist), runs the probe
// with ResolvConf set, and reports what the program saw and what its own
// view looks like afterwards.
func resolvSymlink() int {
	var res symlinkResult
	err := func() error {
		dir := os.Getenv("DIR")
		stub := os.Getenv("STUB")
		link := filepath.Join(dir, "resolv.conf")
		if err := os.Symlink(stub, link); err != nil {
			return err
		}
		b, _ := os.ReadFile(stub)
		res.StubBefore = string(b)
		fd, err := unix.Open(link, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", fd), "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind symlink over /etc/resolv.conf: %w", err)
		}
		u, err := child.LookupUser("nobody")
		if err != nil {
			return err
		}
		out, err := os.CreateTemp(dir, "out")
		if err != nil {
			return err
		}
		defer out.Close()
		p, err := child.Start(&child.Config{
			Path:       os.Getenv("PROBE"),
			Args:       []string{"probe"},
			Env:        probeEnv(),
			User:       u,
			ResolvConf: []byte(os.Getenv("CONTENT")),
			Stdout:     out,
			Stderr:     os.Stderr,
		})
		if err != nil {
			return err
		}
		defer p.Close()
		if err := p.Release(); err != nil {
			return err
		}
		st, err := p.Wait()
		if err != nil {
			return err
		}
		if st.ExitCode() != 0 {
			return fmt.Errorf("probe: %v", st)
		}
		b, err = os.ReadFile(out.Name())
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &res.Inside)
	}()
	if err != nil {
		res.HelperErr = err.Error()
	}
	res.LinkAfter, _ = os.Readlink("/etc/resolv.conf")
	b, _ := os.ReadFile(os.Getenv("STUB"))
	res.StubAfter = string(b)
	if err := json.NewEncoder(os.Stdout).Encode(&res); err != nil {
		return 1
	}
	return 0
}

func TestResolvConfSymlink(t *testing.T) {
	testbed.RequirePrivileged(t)
	probe := probeBinary(t)
	const content = "nameserver 192.0.2.53\n"
	for _, tc := range []struct {
		name    string
		stubbed bool // the link's target exists
	}{
		{"to-stub", true},
		{"dangling", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			stub := filepath.Join(dir, "stub-resolv.conf")
			const stubContent = "nameserver 127.0.0.53\n"
			if tc.stubbed {
				if err := os.WriteFile(stub, []byte(stubContent), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe)
			cmd.Env = append(os.Environ(), envHelper+"=resolv-symlink", "DIR="+dir, "STUB="+stub,
				"PROBE="+probe, "CONTENT="+content)
			// A mount namespace of its own; Go makes its mounts private,
			// so the helper's symlink never reaches the host.
			cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, stderr.String())
			}
			var res symlinkResult
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("helper output %q: %v", out, err)
			}
			if res.HelperErr != "" {
				t.Fatalf("helper: %s\n%s", res.HelperErr, stderr.String())
			}
			if res.Inside.ResolvConf != content {
				t.Errorf("program reads %q, want %q", res.Inside.ResolvConf, content)
			}
			if res.Inside.ResolvMode != "-rw-r--r--" {
				t.Errorf("program sees /etc/resolv.conf with mode %s, want a regular file -rw-r--r--", res.Inside.ResolvMode)
			}
			// The helper's own view: still the link, target untouched.
			if res.LinkAfter != stub {
				t.Errorf("helper's /etc/resolv.conf links to %q after the run, want %q", res.LinkAfter, stub)
			}
			want := ""
			if tc.stubbed {
				want = stubContent
			}
			if res.StubBefore != want || res.StubAfter != want {
				t.Errorf("link target content %q before, %q after; want %q", res.StubBefore, res.StubAfter, want)
			}
			if _, err := os.Stat(stub); tc.stubbed == errors.Is(err, os.ErrNotExist) {
				t.Errorf("stat %s after the run: %v", stub, err)
			}
		})
	}
}

func TestPdeathsig(t *testing.T) {
	testbed.RequirePrivileged(t)
	sleep := lookPath(t, "sleep")
	for _, release := range []bool{false, true} {
		t.Run(fmt.Sprintf("release=%v", release), func(t *testing.T) {
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe)
			rel := "0"
			if release {
				rel = "1"
			}
			cmd.Env = append(os.Environ(), envHelper+"=intermediate", "SLEEP="+sleep, "RELEASE="+rel)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			killed := false
			defer func() {
				if !killed {
					cmd.Process.Kill()
					cmd.Wait()
				}
			}()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				t.Fatalf("intermediate: %v\n%s", err, stderr.String())
			}
			initPid, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				t.Fatalf("intermediate said %q", line)
			}
			ns := pidNS(t, initPid)
			watch := []int{initPid}
			if release {
				// Release returned after the program started.
				kids := testbed.Children(t, initPid)
				if len(kids) != 1 {
					t.Fatalf("init %d has children %v, want the program", initPid, kids)
				}
				watch = append(watch, kids[0])
			}
			var pidfds []int
			for _, pid := range watch {
				fd, err := unix.PidfdOpen(pid, 0)
				if err != nil {
					t.Fatalf("pidfd_open %d: %v", pid, err)
				}
				defer unix.Close(fd)
				pidfds = append(pidfds, fd)
			}

			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			killed = true

			// A pidfd becomes readable when its process exits; no timeout:
			// the test's own deadline bounds a failure.
			for i, fd := range pidfds {
				fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
				for {
					_, err := unix.Poll(fds, -1)
					if !errors.Is(err, unix.EINTR) {
						if err != nil {
							t.Fatal(err)
						}
						break
					}
				}
				if st, err := testbed.ProcState(watch[i]); err == nil && st != "Z" && st != "X" {
					t.Errorf("pid %d is in state %s after its parent was killed", watch[i], st)
				}
			}
			if left := testbed.LiveInPIDNamespace(t, ns); len(left) > 0 {
				t.Errorf("processes left in the PID namespace: %v", left)
			}
		})
	}
}

// intermediate plays a parent that starts a child and is then SIGKILLed.
func intermediate() int {
	p, err := child.Start(&child.Config{
		Path:   os.Getenv("SLEEP"),
		Args:   []string{"sleep", "1000"},
		Stdout: os.Stderr,
		Stderr: os.Stderr,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if os.Getenv("RELEASE") == "1" {
		if err := p.Release(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Println(p.Pid())
	// Wait for the test to kill us; stdin stays open until then.
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 3
}

func TestConcurrent(t *testing.T) {
	sh := lookPath(t, "sh")
	const n = 16
	type result struct {
		netns string
		st    child.Status
		err   error
	}
	procs := make([]*child.Process, n)
	for i := range n {
		procs[i], _ = start(t, &child.Config{Path: sh, Args: []string{"sh", "-c", "exit " + strconv.Itoa(i)}})
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			var r result
			ns, err := procs[i].NetNS()
			if err != nil {
				r.err = err
				results <- r
				return
			}
			var st unix.Stat_t
			if err := unix.Fstat(int(ns.Fd()), &st); err != nil {
				r.err = err
				results <- r
				return
			}
			r.netns = strconv.FormatUint(st.Ino, 10)
			if r.err = procs[i].Release(); r.err == nil {
				r.st, r.err = procs[i].Wait()
				if r.err == nil && r.st.ExitCode() != i {
					r.err = fmt.Errorf("run %d: %v", i, r.st)
				}
			}
			results <- r
		}()
	}
	seen := map[string]bool{}
	for range n {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		if seen[r.netns] {
			t.Errorf("two runs share network namespace %s", r.netns)
		}
		seen[r.netns] = true
	}
}

// BenchmarkRun measures a whole run of /bin/true: re-exec, namespaces,
// mounts, release, exec, exit, teardown of the PID namespace.
func BenchmarkRun(b *testing.B) {
	testbed.RequirePrivileged(b)
	truePath, err := exec.LookPath("true")
	if err != nil {
		b.Fatal(err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	for b.Loop() {
		p, err := child.Start(&child.Config{Path: truePath, Args: []string{"true"}, Stdin: null, Stdout: null, Stderr: null})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Release(); err != nil {
			b.Fatal(err)
		}
		if st, err := p.Wait(); err != nil || st.ExitCode() != 0 {
			b.Fatalf("%v, %v", st, err)
		}
		p.Close()
	}
}

// TestKeyLog: a program running as nobody appends to the key log FIFO, as
// a TLS library does with SSLKEYLOGFILE (twice, as two processes would),
// and the parent reads every line from outside; the FIFO and its tmpfs
// exist only in the child's mount namespace.
func TestKeyLog(t *testing.T) {
	testbed.RequirePrivileged(t)
	u, err := child.LookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// nobody must reach it, as it reaches rundir.Dir (/run/nsntrace-state).
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "keys")
	cfg := &child.Config{
		Path:   lookPath(t, "sh"),
		Args:   []string{"sh", "-c", `echo "CLIENT_RANDOM aa bb" >>"$F" && echo "CLIENT_RANDOM cc dd" >>"$F"`},
		Env:    []string{"F=" + path, "PATH=/usr/bin:/bin"},
		User:   u,
		KeyLog: path,
	}
	p, wait := start(t, cfg)
	f, err := p.KeyLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := p.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if r := wait(); r.status.ExitCode() != 0 {
		t.Fatalf("program: %v, stderr %s", r.status, r.stderr)
	}
	b := make([]byte, 4096)
	n, err := f.Read(b)
	if want := "CLIENT_RANDOM aa bb\nCLIENT_RANDOM cc dd\n"; err != nil || string(b[:n]) != want {
		t.Errorf("read %q, %v; want %q", b[:n], err, want)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("the host's %s holds %v (%v): the FIFO or its mount leaked", dir, ents, err)
	}
}
