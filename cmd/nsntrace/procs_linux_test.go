//go:build linux

package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nsntrace/nsntrace/internal/testbed"
	"github.com/nsntrace/nsntrace/rawcap"
)

func TestSocketInode(t *testing.T) {
	for _, c := range []struct {
		link  string
		inode uint32
		ok    bool
	}{
		{"socket:[7108494]", 7108494, true},
		{"socket:[4294967295]", 4294967295, true},
		{"socket:[4294967296]", 0, false},
		{"socket:[]", 0, false},
		{"socket:[12", 0, false},
		{"pipe:[12]", 0, false},
		{"/dev/null", 0, false},
		{"anon_inode:[eventfd]", 0, false},
	} {
		inode, ok := socketInode([]byte(c.link))
		if ok != c.ok || ok && inode != c.inode {
			t.Errorf("socketInode(%q) = %d, %v; want %d, %v", c.link, inode, ok, c.inode, c.ok)
		}
	}
}

func TestCmdlineText(t *testing.T) {
	long := strings.Repeat("x", maxCmdline-1) + "é" // the cut falls inside é
	for _, c := range []struct{ in, want string }{
		{"curl\x00-s\x00http://a/\x00", "curl -s http://a/"},
		{"", ""},
		{"\x00\x00", ""},
		{"sh\x00-c\x00a b\x00", "sh -c a b"}, // the spaces of an argument are not told apart
		{long + "\x00", strings.Repeat("x", maxCmdline-1) + "..."},
	} {
		if got := cmdlineText([]byte(c.in)); got != c.want {
			t.Errorf("cmdlineText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzSocketInode: any link text reads without panic, and what it reads
// as a socket is "socket:[digits]" holding that number; any bytes make a
// command line of valid UTF-8 within the bound.
func FuzzSocketInode(f *testing.F) {
	for _, s := range []string{"socket:[1]", "socket:[]", "pipe:[3]", "socket:[99999999999]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got := cmdlineText(b); !utf8.ValidString(got) || len(got) > maxCmdline+len("...") {
			t.Fatalf("cmdlineText(%q) = %q", b, got)
		}
		inode, ok := socketInode(b)
		if !ok {
			return
		}
		s := string(b)
		digits, found := strings.CutPrefix(s, "socket:[")
		digits, closed := strings.CutSuffix(digits, "]")
		n, err := strconv.ParseUint(digits, 10, 32)
		if !found || !closed || err != nil || uint32(n) != inode {
			t.Fatalf("socketInode(%q) = %d", s, inode)
		}
	})
}

// TestShedBusyUDP: datagrams of known UDP conversations beyond
// udpRepeatLimit within udpWindow make the watcher shed UDP for udpShed,
// then take it back; a shed soon after the last lasts twice as long. Each
// swap goes through the kernel (rawcap's TestWatcherSetFilter shows the
// filters take effect).
func TestShedBusyUDP(t *testing.T) {
	p := watchingProcs(t)
	now := time.Now()
	burst := func(n int) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i := 0; i < n; i++ {
			now = now.Add(udpWindow / udpRepeatLimit / 2)
			p.repeated(now)
		}
	}
	// A steady flow at half the limit never sheds.
	p.mu.Lock()
	for i := 0; i < 5*udpRepeatLimit; i++ {
		now = now.Add(2 * udpWindow / udpRepeatLimit)
		p.repeated(now)
	}
	p.mu.Unlock()
	if p.sheds != 0 {
		t.Fatalf("a flow at half the limit shed UDP %d times", p.sheds)
	}
	burst(3 * udpRepeatLimit)
	if p.sheds != 1 || p.restore == nil || p.shed != udpShed {
		t.Fatalf("after a burst: %d sheds, shed %v, restore pending %v", p.sheds, p.shed, p.restore != nil)
	}
	burst(udpRepeatLimit) // the socket's queue draining: no second shed
	if p.sheds != 1 {
		t.Fatalf("shed again while shed: %d", p.sheds)
	}
	p.restore.Stop()
	p.unshed() // as the timer would
	if p.restore != nil || p.err != nil {
		t.Fatalf("unshed: restore pending %v, err %v", p.restore != nil, p.err)
	}
	now = p.shedEnd.Add(udpShed / 2)
	burst(3 * udpRepeatLimit)
	if p.sheds != 2 || p.shed != 2*udpShed {
		t.Fatalf("a shed right after the last: %d sheds, shed %v, want 2 and %v", p.sheds, p.shed, 2*udpShed)
	}
}

// TestLookupBudget: the first lookupFree lookups of a window always run;
// beyond them, once lookups have spent lookupBudget in the window, the
// rest of the window's connections are left unknown and the watcher is
// quieted; the next window has a budget again.
func TestLookupBudget(t *testing.T) {
	p := watchingProcs(t)
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !p.withinBudget(now) {
		t.Fatal("no budget at the start")
	}
	p.spent = lookupBudget
	for i := 1; i < lookupFree; i++ {
		if !p.withinBudget(now.Add(time.Millisecond)) {
			t.Fatalf("lookup %d of the window refused: the first %d are free", i+1, lookupFree)
		}
	}
	if p.withinBudget(now.Add(lookupWindow/2)) || p.overBudget != 1 || p.sheds != 1 || p.restore == nil {
		t.Fatalf("over budget: a lookup allowed, or %d left out, %d sheds, restore pending %v", p.overBudget, p.sheds, p.restore != nil)
	}
	if !p.withinBudget(now.Add(2 * lookupWindow)) {
		t.Fatal("no budget in the next window")
	}
}

// watchingProcs is a procs with its filters and a watcher, bound to
// nothing, in a namespace of the test's own: what shedding works on.
func watchingProcs(t *testing.T) *procs {
	t.Helper()
	testbed.RequirePrivileged(t)
	f, err := testbed.NewNS(t).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := &procs{}
	if err := p.compileFilters(); err != nil {
		t.Fatal(err)
	}
	if p.watch, err = rawcap.NewWatcher(&rawcap.Config{NetNS: int(f.Fd()), SnapLen: watchSnapLen, Filter: p.full}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestDescribeRecent: a process is described from /proc once, then from
// memory for describeTTL (so it is still named just after it exited, as
// the trade-off says), and read again after that.
func TestDescribeRecent(t *testing.T) {
	root, err := os.OpenRoot("/proc")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	p := &procs{proc: root, descs: map[int]described{}}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	now := time.Now()
	pr, ok := p.describeRecent(pid, now)
	if !ok || pr.Comm != "sleep" || pr.Cmdline != "sleep 60" || pr.Pid != pid {
		t.Fatalf("describeRecent(%d) = %+v, %v", pid, pr, ok)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if pr, ok := p.describeRecent(pid, now.Add(describeTTL/2)); !ok || pr.Comm != "sleep" {
		t.Errorf("within describeTTL: %+v, %v, want the remembered sleep", pr, ok)
	}
	if pr, ok := p.describeRecent(pid, now.Add(describeTTL)); ok {
		t.Errorf("after describeTTL, of a process gone: %+v, want none", pr)
	}
	if _, ok := p.descs[pid]; ok {
		t.Errorf("a process gone is still remembered")
	}
}
