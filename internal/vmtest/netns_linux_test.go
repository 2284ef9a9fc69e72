package vmtest

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// netns is a network namespace held by an fd; it lives as long as the fd
// or a process inside. No `ip netns` and no bind mount: the VM has no ip.
type netns struct {
	name string
	f    *os.File
}

// newNetNS creates a network namespace with lo up.
func newNetNS(name string) (*netns, error) {
	var n *netns
	err := onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return os.NewSyscallError("unshare", err)
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		n = &netns{name: name, f: f}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create network namespace %s: %w", name, err)
	}
	return n, nil
}

// do runs fn on a thread inside n. Sockets fn creates stay in n, and
// processes it starts (os/exec) begin there.
func (n *netns) do(fn func() error) error {
	return onThread(func() error {
		if err := unix.Setns(int(n.f.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter %s: %w", n.name, os.NewSyscallError("setns", err))
		}
		return fn()
	})
}

func (n *netns) fd() int { return int(n.f.Fd()) }

// onThread runs fn on a locked thread that the runtime discards
// afterwards, so a namespace fn entered never leaks to other goroutines.
func onThread(fn func() error) error {
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		res <- fn()
	}()
	return <-res
}
