package testbed

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Output runs the command that newCmd returns, as Start does, and gives
// its standard output and standard error. newCmd must not set Stdout or
// Stderr.
func Output(t testing.TB, newCmd func() *exec.Cmd) (stdout, stderr []byte, err error) {
	t.Helper()
	var o, e bytes.Buffer
	cmd, err := Start(t, func() *exec.Cmd {
		cmd := newCmd()
		o.Reset()
		e.Reset()
		cmd.Stdout, cmd.Stderr = &o, &e
		return cmd
	})
	if err == nil {
		err = cmd.Wait()
	}
	return o.Bytes(), e.Bytes(), err
}

// Start starts the command that newCmd returns and returns it. newCmd must
// return a fresh, unstarted command each time it is called (with its pipes,
// if the caller wants any).
//
// On a native run that is all. Under emulation (see Emulated) it also
// guards against Debian 12's qemu-user 7.2, whose fork sometimes leaves
// the child stuck before it reaches execve: Go starts a command with
// clone(CLONE_VM|CLONE_VFORK), which qemu turns into a fork of the whole
// emulator, the locks its other threads hold included. Such a child keeps
// the parent in os.StartProcess for ever, waiting for the exec status pipe
// to close, and keeps the output pipes of every command started meanwhile
// open too; in CI it took rawcap/filter's test binary to its 10-minute
// timeout. So, emulated, commands start one at a time, and a child not
// exec'ed after stuckAfter is killed and the command started again, up to
// three times in all.
func Start(t testing.TB, newCmd func() *exec.Cmd) (*exec.Cmd, error) {
	t.Helper()
	if Emulated() == "" {
		cmd := newCmd()
		return cmd, cmd.Start()
	}
	emulatedStart.Lock()
	defer emulatedStart.Unlock()
	for try := 1; ; try++ {
		cmd := newCmd()
		// Children started before this one (commands still running) are
		// never taken for its stuck child.
		older := children(os.Getpid())
		started, watched := make(chan struct{}), make(chan bool)
		go func() {
			tick := time.NewTicker(stuckAfter)
			defer tick.Stop()
			killed := false
			for {
				select {
				case <-started:
					watched <- killed
					return
				case <-tick.C:
					killed = len(killUnexeced(os.Getpid(), cmd.Path, older)) > 0 || killed
				}
			}
		}()
		err := startCmd(cmd)
		close(started)
		if killed := <-watched; !killed {
			return cmd, err
		}
		if err == nil {
			_ = cmd.Wait() // reaps the killed child: "signal: killed"
		}
		if try == 3 {
			return nil, fmt.Errorf("%s: qemu-user's child was stuck before execve %d times", cmd.Path, try)
		}
		t.Logf("%s: qemu-user's child was stuck before execve for %v; killed it, starting the command again", cmd.Path, stuckAfter)
	}
}

// emulatedStart makes commands start one at a time under emulation, so
// that any child of ours not yet exec'ed belongs to the command starting.
var emulatedStart sync.Mutex

// stuckAfter is how long a start may take before its child is taken for
// stuck: a start under qemu takes milliseconds, tens of them on a loaded
// machine. A variable, with startCmd, for the test.
var (
	stuckAfter = 15 * time.Second
	startCmd   = (*exec.Cmd).Start
)

// killUnexeced sends SIGKILL to every child of ppid but those in older
// whose executable is not (yet) path, and returns their PIDs. Killing the
// child closes the exec status pipe, so the parent's StartProcess returns;
// its Wait then reports the signal.
func killUnexeced(ppid int, path string, older []int) []int {
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		want = path
	}
	var killed []int
	for _, pid := range children(ppid) {
		if slices.Contains(older, pid) {
			continue
		}
		exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
		if err != nil || exe == want {
			continue // gone, or already the command itself
		}
		if unix.Kill(pid, unix.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
	return killed
}

// children returns the PIDs of the processes whose parent is ppid, read
// from /proc/PID/stat (the parent is the field after the state, which
// follows the parenthesised command name).
func children(ppid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
