package rawcap

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// TestRingNotInPoller: the ring's socket is in none of the process's
// epoll instances (the runtime poller's among them), or the poller's
// thread would wake for each block while the reader pauses. A pipe
// os.Pipe registers is found the same way, so the search works.
func TestRingNotInPoller(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	r := p.open(t, nil)
	var st unix.Stat_t
	if err := r.control(func(fd int) error { return unix.Fstat(fd, &st) }); err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	var pst unix.Stat_t
	if err := unix.Fstat(int(pr.Fd()), &pst); err != nil {
		t.Fatal(err)
	}
	polled := epollInodes(t)
	if !polled[pst.Ino] {
		t.Fatalf("the pipe os.Pipe registered (inode %d) is in no epoll instance: %v", pst.Ino, polled)
	}
	if polled[st.Ino] {
		t.Errorf("the ring's socket (inode %d) is in an epoll instance", st.Ino)
	}
}

// epollInodes returns the inodes of the files every epoll instance of the
// process watches (their fdinfo's "ino:" fields, in hex).
func epollInodes(t *testing.T) map[uint64]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	inos := map[uint64]bool{}
	for _, e := range ents {
		if l, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); l != "anon_inode:[eventpoll]" {
			continue
		}
		f, err := os.Open(filepath.Join("/proc/self/fdinfo", e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			for _, field := range strings.Fields(sc.Text()) {
				var ino uint64
				if _, err := fmt.Sscanf(field, "ino:%x", &ino); err == nil {
					inos[ino] = true
				}
			}
		}
		f.Close()
	}
	return inos
}

// TestPauseEnds: a reader sleeping in a pause wakes at once on Wake, and
// on Close.
func TestPauseEnds(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	for _, how := range []string{"Wake", "Close"} {
		r := p.open(t, nil)
		done := make(chan error, 1)
		go func() { done <- r.wait(time.Minute) }()
		time.Sleep(50 * time.Millisecond)
		if how == "Wake" {
			r.Wake()
		} else {
			r.Close()
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", how, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not end a pause of a minute", how)
		}
	}
}
