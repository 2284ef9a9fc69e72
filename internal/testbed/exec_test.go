package testbed

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// TestKillUnexeced: a child of ours whose executable is not the command's
// is killed (it stands for qemu's forked copy of itself, stuck before
// execve); one that runs the command is left alone.
func TestKillUnexeced(t *testing.T) {
	sleep := RequireTool(t, "sleep")
	start := func() *exec.Cmd {
		cmd := exec.Command(sleep, "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	a := start()
	if got := children(os.Getpid()); !slices.Contains(got, a.Process.Pid) {
		t.Fatalf("children(%d) = %v, want it to hold %d", os.Getpid(), got, a.Process.Pid)
	}
	if got := killUnexeced(os.Getpid(), sleep, nil); len(got) != 0 {
		t.Fatalf("killUnexeced with the child's own executable killed %v", got)
	}
	if got := killUnexeced(os.Getpid(), "/nonexistent/tcpdump", []int{a.Process.Pid}); len(got) != 0 {
		t.Fatalf("killUnexeced killed %v, a child older than the command", got)
	}
	got := killUnexeced(os.Getpid(), "/nonexistent/tcpdump", nil)
	if !slices.Equal(got, []int{a.Process.Pid}) {
		t.Fatalf("killUnexeced = %v, want [%d]", got, a.Process.Pid)
	}
	done := make(chan error, 1)
	go func() { done <- a.Wait() }()
	select {
	case err := <-done:
		if err == nil || err.Error() != "signal: killed" {
			t.Fatalf("child ended with %v, want signal: killed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the child was not killed")
	}
}

// TestOutput: the same output and error, emulated or not.
func TestOutput(t *testing.T) {
	sh := RequireTool(t, "sh")
	for _, emu := range []string{"", "arm64"} {
		t.Setenv(EnvEmulated, emu)
		stdout, stderr, err := Output(t, func() *exec.Cmd {
			return exec.Command(sh, "-c", "echo out; echo err >&2; exit 3")
		})
		if string(stdout) != "out\n" || string(stderr) != "err\n" {
			t.Errorf("emulated=%q: stdout %q, stderr %q", emu, stdout, stderr)
		}
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			t.Errorf("emulated=%q: err %v, want exit status 3", emu, err)
		}
	}
}

// TestStartKillsStuckChild: under emulation, a start whose child never
// reaches execve is undone by killing that child, and the command is
// started again. The stuck child is simulated: the first start runs sleep
// and returns only when it dies, as os.StartProcess returns only when the
// exec status pipe closes.
func TestStartKillsStuckChild(t *testing.T) {
	sleep, sh := RequireTool(t, "sleep"), RequireTool(t, "sh")
	t.Setenv(EnvEmulated, "arm64")
	defer func(d time.Duration) { stuckAfter = d }(stuckAfter)
	stuckAfter = 100 * time.Millisecond
	// A command started before, still running, which must survive.
	older := exec.Command(sleep, "60")
	if err := older.Start(); err != nil {
		t.Fatal(err)
	}
	olderDone := make(chan struct{})
	go func() { older.Wait(); close(olderDone) }()
	t.Cleanup(func() { older.Process.Kill(); <-olderDone })
	var stuck *exec.Cmd
	tries := 0
	defer func(f func(*exec.Cmd) error) { startCmd = f }(startCmd)
	startCmd = func(cmd *exec.Cmd) error {
		tries++
		if tries > 1 {
			return cmd.Start()
		}
		stuck = exec.Command(sleep, "60")
		if err := stuck.Start(); err != nil {
			t.Fatal(err)
		}
		return stuck.Wait()
	}
	stdout, _, err := Output(t, func() *exec.Cmd { return exec.Command(sh, "-c", "echo ok") })
	if err != nil || string(stdout) != "ok\n" {
		t.Fatalf("Output = %q, %v; want \"ok\\n\"", stdout, err)
	}
	if tries != 2 {
		t.Errorf("%d starts, want 2", tries)
	}
	if stuck.ProcessState.String() != "signal: killed" {
		t.Errorf("the stuck child ended with %v, want signal: killed", stuck.ProcessState)
	}
	select {
	case <-olderDone:
		t.Errorf("the command started before was killed too: %v", older.ProcessState)
	case <-time.After(200 * time.Millisecond):
	}
}
