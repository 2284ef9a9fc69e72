//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/nsntrace/nsntrace/internal/summary"
	"github.com/nsntrace/nsntrace/internal/testbed"
)

// synComments returns the comment of every frame that has one, by the
// frame's protocol and the program's port ("tcp/80"), and fails the test for a comment on a
// frame that starts nothing (a TCP segment other than a SYN). The port is
// the program's: the source's of what it sent, else the destination's.
func synComments(t *testing.T, file string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, row := range fields(t, file, "frame.comment", "frame.comment", "frame.packet_flags_direction",
		"tcp.srcport", "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack", "udp.srcport", "udp.dstport") {
		for len(row) < 9 {
			row = append(row, "")
		}
		isTCP := row[2] != ""
		dir, _ := strconv.ParseUint(row[1], 0, 32) // tshark writes 0x00000002
		if isTCP && (row[4] != "1" && row[4] != "True" || row[5] != "0" && row[5] != "False") {
			t.Errorf("a comment on a TCP segment that is no SYN: %q", row)
			continue
		}
		// Direction 2 is outbound: the program's port is the source.
		port := row[3]
		switch {
		case isTCP && dir == 2:
			port = row[2]
		case !isTCP && dir == 2:
			port = row[6]
		case !isTCP:
			port = row[7]
		}
		if isTCP {
			port = "tcp/" + port
		} else {
			port = "udp/" + port
		}
		if _, dup := got[port]; dup {
			t.Errorf("two comments for %s: %q", port, row)
		}
		got[port] = row[0]
	}
	return got
}

// readerComments reads the file with gopacket's pcapng reader (not
// tshark) and returns the comments of its packets in order.
func readerComments(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var cs []string
	for {
		_, _, opts, err := r.ReadPacketDataWithOptions()
		if err == io.EOF {
			return cs
		}
		if err != nil {
			t.Fatalf("read %s: %v", file, err)
		}
		cs = append(cs, opts.Comments...)
	}
}

var reStarted = regexp.MustCompile(`(?m)^(curl|wget)=(\d+)$`)

// TestProcesses: a shell starts curl and wget in parallel. Each one's
// connection names it, with the pid the shell knew it by ($!), in the
// JSON summary and in a comment on the connection's SYN, which tshark and
// gopacket's pcapng reader both read (tshark with no warning); the text
// summary names both processes on the row.
func TestProcesses(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	testbed.RequireTool(t, "curl")
	testbed.RequireTool(t, "wget")
	js := filepath.Join(e.dir, "p.json")
	url := fmt.Sprintf("http://%s:%d/bytes/", testbed.ServerAddr, testbed.HTTPPort)
	// Downloads that last a few hundred milliseconds: a connection over
	// within a millisecond may be gone before it is looked up (measured
	// in TestProcessesShare); this test is about naming the right one.
	script := fmt.Sprintf(`curl -s --limit-rate 1M %s600000 >/dev/null & echo curl=$!; wget -q --limit-rate=1m -O /dev/null %s600001 & echo wget=$!; wait`, url, url)
	r := e.trace("p.pcapng", "--summary", js, "sh", "-c", script)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	pids := map[string]int{}
	for _, m := range reStarted.FindAllStringSubmatch(r.stdout, -1) {
		pids[m[1]], _ = strconv.Atoi(m[2])
	}
	if len(pids) != 2 {
		t.Fatalf("the shell did not say both pids: %q", r.stdout)
	}
	tsharkOK(t, r.file)
	// Which connection is whose: the path each one asked for.
	whose := map[string]string{}
	for _, row := range fields(t, r.file, "http.request", "tcp.srcport", "http.request.uri") {
		switch row[1] {
		case "/bytes/600000":
			whose[row[0]] = "curl"
		case "/bytes/600001":
			whose[row[0]] = "wget"
		}
	}
	if len(whose) != 2 {
		t.Fatalf("requests in the file: %v", whose)
	}
	comments := synComments(t, r.file)
	rep := readSummary(t, js)
	for port, comm := range whose {
		var c *summary.Connection
		for i := range rep.Connections {
			if strconv.Itoa(int(rep.Connections[i].LocalPort)) == port && rep.Connections[i].Proto == "tcp" {
				c = &rep.Connections[i]
			}
		}
		if c == nil {
			t.Errorf("no connection from port %s in the summary", port)
			continue
		}
		if c.Comm != comm || c.Pid != pids[comm] || !strings.HasPrefix(c.Cmdline, comm+" ") || !strings.Contains(c.Cmdline, url) {
			t.Errorf("%s's connection (port %s) names pid %d %q (%q); the shell started it as %d", comm, port, c.Pid, c.Comm, c.Cmdline, pids[comm])
		}
		want := fmt.Sprintf("nsntrace: pid %d %s (%s)", pids[comm], comm, c.Cmdline)
		if comments["tcp/"+port] != want {
			t.Errorf("the SYN from port %s has comment %q, want %q", port, comments["tcp/"+port], want)
		}
	}
	if len(comments) != 2 {
		t.Errorf("comments %q, want the two SYNs'", comments)
	}
	if rc := readerComments(t, r.file); len(rc) != 2 || !strings.HasPrefix(rc[0], "nsntrace: pid ") || !strings.HasPrefix(rc[1], "nsntrace: pid ") {
		t.Errorf("gopacket's pcapng reader reads the comments %q", rc)
	}
	var unknown []summary.Connection
	for _, c := range rep.Connections {
		if (c.Proto == "tcp" || c.Proto == "udp") && c.Pid == 0 {
			unknown = append(unknown, c)
		}
	}
	t.Logf("connections with no process: %+v", unknown)
	if rep.Unattributed == nil || *rep.Unattributed != uint64(len(unknown)) {
		t.Errorf("unattributed_connections = %v; the JSON has %d such: %+v", rep.Unattributed, len(unknown), unknown)
	}
	row := regexp.MustCompile(`(?m)^.*tcp +8080  198\.51\.100\.80 .*2 conns .*$`).FindString(r.stderr)
	for comm, pid := range pids {
		if !strings.Contains(row, fmt.Sprintf("%s[%d]", comm, pid)) {
			t.Errorf("the text row does not name %s[%d]: %q", comm, pid, row)
		}
	}
	e.clean("")
}

// nsPid is the pid as its PID namespace numbers it of the host process
// whose command line holds token: /proc/PID/status's last NSpid.
func nsPid(t *testing.T, token string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		cmd, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), token) || strings.Contains(string(cmd), "-o\x00") {
			continue // nsntrace itself carries the token too, after its -o
		}
		st, err := os.ReadFile(filepath.Join("/proc", d.Name(), "status"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(st), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "NSpid:" {
				n, _ := strconv.Atoi(f[len(f)-1])
				return n
			}
		}
	}
	t.Fatalf("no process carries %s", token)
	return 0
}

// TestProcessesInbound: connections to a published port, TCP and UDP,
// name the server process that owns the listening (or the unconnected
// UDP) socket.
func TestProcessesInbound(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	token := fmt.Sprintf("nsntrace-e2e-procin-%d", os.Getpid())
	file := filepath.Join(e.dir, "in.pcapng")
	js := filepath.Join(e.dir, "in.json")
	var stderr testbed.SyncBuffer
	end, _ := e.startPublished(file, token, &stderr, "--summary", js, "-p", "8080:80", "-p", "8080:80/udp")
	pid := nsPid(t, token)
	for _, network := range []string{"tcp", "udp"} {
		if _, err := askWho(e.in.U, network, "10.77.0.2:8080"); err != nil {
			t.Errorf("upstream -> %s: %v", network, err)
		}
	}
	if code := end(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	t.Logf("nsntrace's stderr:\n%s", stderr.String())
	comm := filepath.Base(os.Args[0])
	if len(comm) > 15 {
		comm = comm[:15] // TASK_COMM_LEN
	}
	rep := readSummary(t, js)
	seen := 0
	for _, c := range rep.Connections {
		if c.Direction != "inbound" || c.LocalPort != 80 {
			continue
		}
		seen++
		if c.Pid != pid || c.Comm != comm || !strings.Contains(c.Cmdline, token) {
			t.Errorf("inbound %s from %s: pid %d %q (%q), want %d %q", c.Proto, c.RemoteAddr, c.Pid, c.Comm, c.Cmdline, pid, comm)
		}
	}
	if seen != 2 {
		t.Errorf("%d inbound connections to port 80, want 2", seen)
	}
	want := fmt.Sprintf("nsntrace: pid %d %s (", pid, comm)
	comments := synComments(t, file)
	if len(comments) != 2 {
		t.Errorf("comments %q, want the SYN's and the first datagram's", comments)
	}
	for port, c := range comments {
		if port != "tcp/80" && port != "udp/80" || !strings.HasPrefix(c, want) {
			t.Errorf("port %s: comment %q, want %q...", port, c, want)
		}
	}
	tsharkOK(t, file)
	e.clean(token)
}

// TestProcessesShare measures what share of connections is attributed:
// 100 curl runs one after the other (each connection lives about a
// millisecond), and one slow download of about three seconds. It logs
// the figures; what it asserts is that nothing is guessed (every
// connection named is the right program's) and that the long connection
// is named.
func TestProcessesShare(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	testbed.RequireTool(t, "curl")
	url := fmt.Sprintf("http://%s:%d/bytes/", testbed.ServerAddr, testbed.HTTPPort)
	for _, c := range []struct {
		name, comm, script string
		want               int
	}{
		{"100 short", "curl", fmt.Sprintf(`for i in $(seq 100); do curl -s %s100 >/dev/null; done`, url), 100},
		// curl's --limit-rate lets a download that fits the socket
		// buffers end at once; wget's holds the connection for 3 s.
		{"one long", "wget", fmt.Sprintf(`wget -q --limit-rate=10k -O /dev/null %s30000`, url), 1},
	} {
		js := filepath.Join(e.dir, "share.json")
		start := time.Now()
		r := e.trace("share.pcapng", "--summary", js, "sh", "-c", c.script)
		if r.code != 0 {
			t.Fatalf("%s: exit %d", c.name, r.code)
		}
		took := time.Since(start)
		rep := readSummary(t, js)
		conns, named := 0, 0
		for _, conn := range rep.Connections {
			if conn.Proto != "tcp" || conn.RemotePort != testbed.HTTPPort {
				continue
			}
			conns++
			if conn.Pid != 0 {
				named++
				if conn.Comm != c.comm {
					t.Errorf("%s: port %d named %d %q, not %s", c.name, conn.LocalPort, conn.Pid, conn.Comm, c.comm)
				}
			}
		}
		if conns != c.want {
			t.Errorf("%s: %d connections, want %d", c.name, conns, c.want)
		}
		if n := len(synComments(t, r.file)); n != named {
			t.Errorf("%s: %d comments, %d connections named", c.name, n, named)
		}
		t.Logf("%s: %d of %d connections attributed (%.0f%%), trace took %v", c.name, named, conns, 100*float64(named)/float64(max(conns, 1)), took.Round(time.Millisecond))
		if c.want == 1 && named != 1 {
			t.Errorf("%s: the connection of a three-second download is not attributed", c.name)
		}
	}
	e.clean("")
}
