//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// isbCounts are the counters of a file's interface statistics blocks.
type isbCounts struct {
	blocks                    int
	received, accepted, drops uint64
	delivered                 uint64 // isb_usrdeliv: what the file says it holds
	packets                   uint64 // enhanced packet blocks in the file
}

// readISB walks a pcapng file's blocks and returns the packet count and
// the counters of the last interface statistics block of its first
// interface, the program's veth (options 4 isb_ifrecv, 6 isb_filteraccept,
// 7 isb_osdrop, 8 isb_usrdeliv; draft-ietf-opsawg-pcapng).
func readISB(t *testing.T, file string) isbCounts {
	t.Helper()
	return readISBOf(t, file, 0)
}

// readISBOf is readISB for interface id.
func readISBOf(t *testing.T, file string, id uint32) isbCounts {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c isbCounts
	var bo binary.ByteOrder = binary.LittleEndian
	for off := 0; off+12 <= len(b); {
		typ := bo.Uint32(b[off:])
		if typ == 0x0a0d0d0a && binary.BigEndian.Uint32(b[off+8:]) == 0x1a2b3c4d {
			bo = binary.BigEndian
		}
		n := int(bo.Uint32(b[off+4:]))
		if n < 12 || off+n > len(b) {
			t.Fatalf("%s: block at %d has length %d", file, off, n)
		}
		body := b[off+8 : off+n-4]
		if (typ == 5 || typ == 6) && (len(body) < 4 || bo.Uint32(body) != id) {
			off += n
			continue
		}
		switch typ {
		case 6:
			c.packets++
		case 5:
			c.blocks++
			for o := 12; o+4 <= len(body); {
				code, l := bo.Uint16(body[o:]), int(bo.Uint16(body[o+2:]))
				if code == 0 || o+4+l > len(body) {
					break
				}
				if l == 8 {
					v := bo.Uint64(body[o+4:])
					switch code {
					case 4:
						c.received = v
					case 6:
						c.accepted = v
					case 7:
						c.drops = v
					case 8:
						c.delivered = v
					}
				}
				o += 4 + (l+3)&^3
			}
		}
		off += n
	}
	return c
}

// TestTracesHoldOnlyTheProgram runs traces while the host talks to the
// upstream on its uplink all the time: no trace may hold a packet the
// program did not send or receive, each exits with the program's status,
// and each file's counters add up (received = delivered + dropped). The
// drain once re-hooked the capture to every interface of the host.
func TestTracesHoldOnlyTheProgram(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	// Background traffic between H and U: datagrams to the echo server
	// and their echoes, as fast as they go.
	var conn net.Conn
	if err := e.in.H.Do(func() error {
		var err error
		conn, err = net.Dial("udp", netip.AddrPortFrom(testbed.UpstreamAddr, testbed.EchoPort).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		msg := []byte(strings.Repeat("host-traffic ", 40))
		for {
			select {
			case <-stop:
				return
			default:
			}
			conn.Write(msg) // a full socket buffer is fine: keep going
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait(); conn.Close() })

	runs := 12
	stopLoad := func() {}
	if soak() {
		// The load: an iperf3 between the host and the upstream
		// besides the datagrams, for as long as the traces take.
		runs = 200
		testbed.RequireTool(t, "iperf3")
		srv := e.in.U.Command("iperf3", "-s", "-B", testbed.UpstreamAddr.String())
		cli := e.in.H.Command("iperf3", "-c", testbed.UpstreamAddr.String(), "-t", "3600", "-b", "200M")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // the server listens
		if err := cli.Start(); err != nil {
			t.Fatal(err)
		}
		stopLoad = func() { cli.Process.Kill(); cli.Wait(); srv.Process.Kill(); srv.Wait() }
		t.Cleanup(stopLoad)
	}
	for i := range runs {
		r := e.trace(fmt.Sprintf("quiet-%d.pcapng", i), "sh", "-c", "exit 3")
		if r.code != 3 {
			t.Fatalf("run %d: exit %d, want the program's 3: %s", i, r.code, r.stderr)
		}
		// The program sent nothing: only what its namespace says by
		// itself on a fresh link may be there.
		if rows := fields(t, r.file, "!("+linkChatter+")", "frame.number", "eth.dst", "_ws.col.Info"); len(rows) > 0 {
			t.Errorf("run %d holds %d packets the program did not send or receive, first %q", i, len(rows), rows[0])
		}
		c := readISB(t, r.file)
		if c.blocks != 1 || c.received != c.packets+c.drops || c.accepted != c.received {
			t.Errorf("run %d: counters do not add up: %+v", i, c)
		}
	}
	stopLoad()
	e.clean("")
}

// soak reports whether the long versions of the exactness tests were asked
// for (NSNTRACE_SOAK=1): the counts the acceptance names.
func soak() bool { return os.Getenv("NSNTRACE_SOAK") == "1" }

// TestConcurrentDownloads runs traces of downloads side by side, with
// summaries: every one must exit with the program's status and end with
// a complete file whose counters add up.
func TestConcurrentDownloads(t *testing.T) {
	t.Parallel()
	e := newE2E(t, &testbed.InternetConfig{LoopbackResolver: true})
	testbed.RequireTool(t, "curl")
	n, size := 6, 1000000
	if soak() {
		n, size = 64, 5000000
	}
	url := fmt.Sprintf("http://www.example.test:%d/bytes/%d", testbed.HTTPPort, size)
	type run struct {
		code   int
		stderr string
	}
	res := make([]run, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			file := filepath.Join(e.dir, fmt.Sprintf("d%d.pcapng", i))
			cmd := e.cmd("-q", "-o", file, "--summary", file+".json", "curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", url)
			code, stdout, stderr := runNoFail(cmd)
			res[i] = run{code: code, stderr: stderr}
			if code == 0 && stdout != fmt.Sprint(size) {
				res[i].code, res[i].stderr = -1, "downloaded "+stdout
			}
		}()
	}
	wg.Wait()
	for i, r := range res {
		if r.code != 0 {
			t.Errorf("trace %d: exit %d: %s", i, r.code, r.stderr)
			continue
		}
		c := readISB(t, filepath.Join(e.dir, fmt.Sprintf("d%d.pcapng", i)))
		if c.blocks != 1 || c.received != c.packets+c.drops || c.packets == 0 {
			t.Errorf("trace %d: counters do not add up: %+v", i, c)
		}
	}
	e.clean("")
}

// TestProgramLeavesProcesses: by default the trace ends with the program,
// and what it left running is stopped (SIGTERM, SIGKILL after the grace
// period) and counted in the end report; --wait-all traces until the last
// process is gone, a daemon that forked and exited included.
func TestProgramLeavesProcesses(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	echo := netip.AddrPortFrom(testbed.UpstreamAddr, testbed.EchoPort).String()
	sh := func(script string, steps ...string) string {
		return strings.ReplaceAll(script, "HELPER", shellQuote(helper(steps...)))
	}

	// A background loop that would run forever, and one that ignores
	// SIGTERM: the first ends at SIGTERM, the second needs the SIGKILL.
	r := e.trace("default.pcapng", "sh", "-c", sh("HELPER udp-forever "+echo+" left-forever-1 & echo main-exits", "token", "left-forever-1"))
	if r.code != 0 || !strings.Contains(r.stderr, "sh ended; 1 process it left running got SIGTERM (--wait-all") {
		t.Errorf("a left-running loop: exit %d, messages:\n%s", r.code, r.stderr)
	}
	e.clean("left-forever-1")
	ready := filepath.Join(e.dir, "ignoring")
	r = e.trace("stubborn.pcapng", "sh", "-c", sh("HELPER & while [ ! -e "+ready+" ]; do sleep 0.05; done",
		"token", "left-stubborn-1", "ignore-term", "touch", ready, "sleep", "60s"))
	if r.code != 0 || !strings.Contains(r.stderr, "1 process it left running got SIGTERM, 1 still there after 2s got SIGKILL") {
		t.Errorf("a left-running process that ignores SIGTERM: exit %d, messages:\n%s", r.code, r.stderr)
	}
	e.clean("left-stubborn-1")

	// --wait-all: a late subshell and a setsid daemon both get to talk.
	r = e.trace("late.pcapng", "--wait-all", "sh", "-c",
		sh("(sleep 0.5; HELPER) & setsid sh -c 'sleep 0.3; exec HELPER' & echo main-exits; exit 4",
			"udp", echo, "late-datagram"))
	if r.code != 4 || strings.Contains(r.stderr, "left running") {
		t.Errorf("--wait-all: exit %d, want the program's 4; messages:\n%s", r.code, r.stderr)
	}
	want := fmt.Sprintf("%x", "late-datagram")
	got := 0
	for _, f := range fields(t, r.file, "udp.port == 7 && "+r.is("src"), "udp.payload") {
		if strings.ReplaceAll(f[0], ":", "") == want {
			got++
		}
	}
	if got != 2 {
		t.Errorf("--wait-all: %d datagrams of the late processes in the trace, want 2", got)
	}
	e.clean("late-datagram")
}
