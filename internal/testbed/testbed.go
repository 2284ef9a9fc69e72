// Package testbed holds the test helpers that several nsntrace packages
// share: privilege and tool checks, throwaway network namespaces, veth pairs
// between them, and the private internet of shared/TESTBED.md (a "host"
// namespace whose default route leads to an "upstream" namespace running
// servers).
//
// Everything a helper creates is removed by t.Cleanup, even when the test
// fails. Nothing here touches the root network namespace beyond creating
// and deleting the named namespaces themselves.
//
// # Privileges
//
// The helpers need root (CAP_SYS_ADMIN, CAP_NET_ADMIN). A test that lacks
// them is skipped with the reason, unless NSNTRACE_REQUIRE_PRIVILEGED=1 is
// set (as .ci/run does), in which case it fails: a skip can never hide a
// regression in CI.
//
// # Emulated CPUs
//
// make test-cpus runs the pure tests of some packages cross-compiled under
// qemu-user and sets NSNTRACE_EMULATED to the GOARCH. There every
// privileged test skips, even under NSNTRACE_REQUIRE_PRIVILEGED=1: the
// native run of make test runs them, on the kernel they would reach anyway.
package testbed

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// EnvRequirePrivileged is the environment variable that turns a would-be
// skip for lack of privileges or tools into a failure.
const EnvRequirePrivileged = "NSNTRACE_REQUIRE_PRIVILEGED"

// Required reports whether skips for missing privileges or tools must fail.
func Required() bool { return os.Getenv(EnvRequirePrivileged) == "1" }

// SkipOrFail skips the test with the formatted reason, or fails it when
// NSNTRACE_REQUIRE_PRIVILEGED=1.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (and %s=1 forbids skipping)", msg, EnvRequirePrivileged)
	}
	t.Skip(msg)
}

// EnvEmulated names the environment variable that make test-cpus sets to
// the GOARCH a test binary was built for when it runs on another CPU
// (under qemu-user, or for 386 on the amd64 kernel itself).
const EnvEmulated = "NSNTRACE_EMULATED"

// Emulated returns the GOARCH named by NSNTRACE_EMULATED, or "" on a
// native run.
func Emulated() string { return os.Getenv(EnvEmulated) }

// RequirePrivileged skips (or fails, see SkipOrFail) unless the test runs as
// root and can create network namespaces, and unless the `ip` tool the
// helpers use is present.
//
// An emulated run (see Emulated) always skips, whatever
// NSNTRACE_REQUIRE_PRIVILEGED says: under qemu-user, namespaces, AF_PACKET
// rings and mounts still reach the host's kernel, through qemu's
// translation of each syscall, so such a test would judge qemu rather than
// our code on that CPU. The native run of the same test in make test is
// the one that may not skip.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if e := Emulated(); e != "" {
		t.Skipf("privileged test skipped under emulation (%s=%s); the native run covers it", EnvEmulated, e)
	}
	if runtime.GOOS != "linux" {
		SkipOrFail(t, "privileged test needs Linux, not %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		SkipOrFail(t, "privileged test needs root (euid is %d)", os.Geteuid())
	}
	RequireTool(t, "ip")
}

// RequireTool returns the path of an external program the test needs (an
// oracle such as tshark), skipping or failing when it is not installed.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipOrFail(t, "test needs %q (install it: see .ci/run)", name)
	}
	return p
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of the nsntrace binary under test: $NSNTRACE_BIN
// when set (make test sets it to bin/nsntrace), otherwise a static build of
// ./cmd/nsntrace made once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("NSNTRACE_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("NSNTRACE_BIN: %v", err)
		}
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nsntrace-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "nsntrace")
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/nsntrace")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/nsntrace: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's directory")
		}
		dir = parent
	}
}

var nsCounter atomic.Uint32

// NS is a throwaway named network namespace (/run/netns/NAME).
type NS struct {
	// Name is the namespace's name as `ip netns` knows it.
	Name string

	deleted atomic.Bool
}

// NewNS creates a fresh network namespace with lo up, and removes it (with
// every process still inside and its /etc/netns/NAME directory) when the
// test ends.
func NewNS(t testing.TB) *NS {
	t.Helper()
	RequirePrivileged(t)
	name := fmt.Sprintf("nsntt-%d-%d", os.Getpid(), nsCounter.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	n := &NS{Name: name}
	t.Cleanup(func() { n.Delete(t) })
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

// Delete removes the namespace before the test ends, as its cleanup would;
// for tests of what outlives a namespace. Later calls do nothing.
func (n *NS) Delete(t testing.TB) {
	t.Helper()
	if !n.deleted.Swap(true) {
		n.remove(t)
	}
}

func (n *NS) remove(t testing.TB) {
	// Kill whatever is left inside first: a process holding the
	// namespace would keep its veths and sockets alive. Never ourselves:
	// `ip netns pids` judges a process by its main thread, and when Do's
	// fn ends its goroutine on the main thread, the runtime keeps that
	// thread (locked, still inside n) instead of ending it; killing our
	// own pid would skip the `ip netns del` below and every later cleanup.
	if out, err := exec.Command("ip", "netns", "pids", n.Name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 0 && pid != os.Getpid() {
				_ = unix.Kill(pid, unix.SIGKILL) // best effort: it may be gone already
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v: %s", n.Name, err, out)
	}
	if err := os.RemoveAll(filepath.Join("/etc/netns", n.Name)); err != nil {
		t.Errorf("remove /etc/netns/%s: %v", n.Name, err)
	}
}

// Path is the namespace's bind-mount path, usable with setns(2).
func (n *NS) Path() string { return filepath.Join("/run/netns", n.Name) }

// Open returns an fd of the namespace (O_CLOEXEC); the caller closes it.
func (n *NS) Open() (*os.File, error) { return os.Open(n.Path()) }

// Do runs fn on a dedicated OS thread that has entered the namespace.
// Sockets created inside fn stay in the namespace after Do returns. A
// thread whose namespace could not be restored is never unlocked, so the
// runtime discards it.
//
// If fn panics, Do panics with the same value in the caller's goroutine,
// and if fn ends its goroutine (t.Fatal or t.Skip called inside fn) Do
// returns an error: either way the test goroutine goes on to run its
// cleanups, which delete the namespace. (Before, Do waited forever for a
// result that never came, the runtime died of "all goroutines are asleep"
// and no cleanup ran: every such run left its namespaces behind.)
func (n *NS) Do(fn func() error) error {
	f, err := n.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	type result struct {
		err      error
		panicked any
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{err: err}
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("setns %s: %w", n.Name, err)}
			return
		}
		returned := false
		defer func() {
			if returned {
				return
			}
			// fn panicked or called runtime.Goexit. The thread is still
			// in n and stays locked, so it dies with this goroutine.
			if r := recover(); r != nil {
				res <- result{panicked: fmt.Sprintf("in namespace %s: %v\n%s", n.Name, r, debug.Stack())}
				return
			}
			res <- result{err: fmt.Errorf("in namespace %s: fn ended its goroutine (t.Fatal, t.Skip or runtime.Goexit inside Do)", n.Name)}
		}()
		ferr := fn()
		returned = true
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it exits with this goroutine.
			res <- result{err: fmt.Errorf("restore netns after %s: %w", n.Name, err)}
			return
		}
		runtime.UnlockOSThread()
		res <- result{err: ferr}
	}()
	r := <-res
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// Command returns `ip netns exec NAME name args...`, which also bind-mounts
// /etc/netns/NAME/resolv.conf over /etc/resolv.conf for the command.
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command inside the namespace and fails the test if it fails.
// It returns the combined output.
func (n *NS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s %s: %v\n%s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Sh runs a shell script inside the namespace, failing the test on error.
func (n *NS) Sh(t testing.TB, script string) string {
	t.Helper()
	return n.Run(t, "sh", "-ec", script)
}

// Veth creates a veth pair with one end, aName, in a and the other, bName,
// in b; both ends are created directly in their namespaces and set up.
// Deleting either namespace removes the pair.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	out, err := exec.Command("ip", "link", "add", aName, "netns", a.Name, "type", "veth",
		"peer", "name", bName, "netns", b.Name).CombinedOutput()
	if err != nil {
		t.Fatalf("create veth %s/%s: %v: %s", aName, bName, err, out)
	}
	a.Run(t, "ip", "link", "set", aName, "up")
	b.Run(t, "ip", "link", "set", bName, "up")
}

// WriteResolvConf writes /etc/netns/NAME/resolv.conf, which `ip netns exec`
// bind-mounts over /etc/resolv.conf for commands it starts.
func (n *NS) WriteResolvConf(t testing.TB, content string) {
	t.Helper()
	dir := filepath.Join("/etc/netns", n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// StaticBusybox returns the path of a statically linked busybox (Debian's
// busybox-static), for root file systems that hold nothing else. It skips
// or fails (see SkipOrFail) when busybox is missing or linked dynamically.
func StaticBusybox(t testing.TB) string {
	t.Helper()
	p := RequireTool(t, "busybox")
	f, err := elf.Open(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	defer f.Close()
	for _, pr := range f.Progs {
		if pr.Type == elf.PT_INTERP {
			SkipOrFail(t, "%s is linked dynamically: the test needs busybox-static (see .ci/run)", p)
		}
	}
	return p
}
