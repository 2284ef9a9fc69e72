//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// loSteps is a program that talks to a server of its own on 127.0.0.1
// and to the upstream's UDP echo server.
func loSteps(payload string) []string {
	return helper("lo-echo", payload, "udp", fmt.Sprintf("%s:%d", testbed.UpstreamAddr, testbed.EchoPort), "hello-up")
}

// loExchangeOnce checks that the file holds the program's exchange with
// its server on 127.0.0.1 with payload exactly once per packet: one SYN,
// one SYN-ACK, the payload there and back, nothing tshark takes for a
// retransmission or a duplicate ACK (which the second copy of every
// packet on lo would be); onLo says the frames must be on interface lo.
func loExchangeOnce(t *testing.T, file, payload string, onLo bool) {
	t.Helper()
	lo := "ip.addr == 127.0.0.1"
	if onLo {
		lo += ` && frame.interface_name == "lo"`
	}
	for _, c := range []struct {
		filter string
		want   int
	}{
		{lo + " && tcp.flags.syn == 1 && tcp.flags.ack == 0", 1},
		{lo + " && tcp.flags.syn == 1 && tcp.flags.ack == 1", 1},
		{lo + fmt.Sprintf(` && tcp.payload == %q`, payload), 2},
		{lo + " && (tcp.analysis.retransmission || tcp.analysis.duplicate_ack || tcp.analysis.out_of_order)", 0},
	} {
		if n := count(t, file, c.filter); n != c.want {
			t.Errorf("%s: %d frames matching %s, want %d", filepath.Base(file), n, c.filter, c.want)
		}
	}
}

// TestLoopback: a program that talks to a server it started on 127.0.0.1
// and to the upstream. Its lo is the second interface of the file, named
// lo, with its own statistics block; every loopback packet is there once,
// with no direction, and none on the veth; the end message and the
// summary count the loopback apart, and the summary lists 127.0.0.1 as no
// outbound connection.
func TestLoopback(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	js := filepath.Join(e.dir, "lo.json")
	r := e.trace("lo.pcapng", append([]string{"--summary", js}, loSteps("hello-lo")...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "lo echo: hello-lo") {
		t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
	}
	info := tsharkOK(t, r.file)
	for _, want := range []string{"Number of interfaces in file: 2", "Name = lo"} {
		if !strings.Contains(info, want) {
			t.Errorf("capinfos lacks %q:\n%s", want, info)
		}
	}
	if n := strings.Count(info, "Number of stat entries = 1"); n != 2 {
		t.Errorf("capinfos: %d interfaces with a statistics block, want 2:\n%s", n, info)
	}
	loExchangeOnce(t, r.file, "hello-lo", true)

	rows := fields(t, r.file, "", "frame.interface_name", "ip.src", "ip.dst", "frame.packet_flags_direction", "frame.interface_description")
	var onLo, onVeth uint64
	for _, row := range rows {
		for len(row) < 5 {
			row = append(row, "")
		}
		loopback := row[1] == "127.0.0.1" || row[2] == "127.0.0.1"
		switch {
		case row[0] == "lo":
			onLo++
			if row[3] != "" {
				t.Errorf("a frame on lo has direction %q, want none", row[3])
			}
			if !strings.HasPrefix(row[4], "loopback of ") {
				t.Errorf("lo's description = %q", row[4])
			}
		case strings.HasPrefix(row[0], "nsn"):
			onVeth++
			if loopback {
				t.Errorf("a loopback frame on the veth: %q", row)
			}
		default:
			t.Errorf("a frame on interface %q", row[0])
		}
	}
	if n := count(t, r.file, `frame.interface_name != "lo" && udp.payload == "hello-up"`); n != 2 {
		t.Errorf("the upstream exchange: %d frames on the veth, want 2", n)
	}
	if n := count(t, r.file, `frame.interface_name == "lo" && udp`); n != 0 {
		t.Errorf("%d UDP frames on lo, want none", n)
	}

	// The statistics of lo: its own block, counting what the file holds
	// of it (no filter: everything lo carried, each packet once).
	c := readISBOf(t, r.file, 1)
	if c.blocks != 1 || c.packets != onLo || c.delivered != onLo || c.accepted != onLo+c.drops || c.received != c.accepted {
		t.Errorf("lo's statistics: %+v, with %d frames on lo", c, onLo)
	}
	if v := readISB(t, r.file); v.blocks != 1 || v.packets != onVeth {
		t.Errorf("the veth's statistics: %+v, with %d frames on it", v, onVeth)
	}
	want := fmt.Sprintf("Finished capturing: %d packets captured (%d on lo), ", onLo+onVeth, onLo)
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q", want)
	}

	// The summary: the loopback apart, the upstream among the connections.
	if !strings.Contains(r.stderr, "Loopback conversations (the program with itself, on lo):") {
		t.Errorf("the summary on stderr has no loopback section")
	}
	s := readSummary(t, js)
	for _, conn := range s.Connections {
		if strings.HasPrefix(conn.RemoteAddr, "127.") {
			t.Errorf("a loopback conversation among the connections: %+v", conn)
		}
	}
	if len(s.Connections) != 1 || s.Connections[0].RemoteAddr != testbed.UpstreamAddr.String() {
		t.Errorf("connections: %+v, want the UDP echo only", s.Connections)
	}
	if len(s.Loopback) != 1 {
		t.Fatalf("loopback: %+v, want one conversation", s.Loopback)
	}
	l := s.Loopback[0]
	if l.Proto != "tcp" || l.ServerAddr != "127.0.0.1" || l.ClientAddr != "127.0.0.1" || l.State != "established" ||
		l.PacketsToServer+l.PacketsToClient != onLo || l.ServerPort == 0 || l.ClientPort == 0 {
		t.Errorf("loopback conversation: %+v, with %d frames on lo", l, onLo)
	}
	if port := fields(t, r.file, `frame.interface_name == "lo" && tcp.flags.syn == 1 && tcp.flags.ack == 0`, "tcp.dstport"); len(port) != 1 || port[0][0] != strconv.Itoa(int(l.ServerPort)) {
		t.Errorf("server port %d, the SYN went to %q", l.ServerPort, port)
	}
	e.clean("")
}

// TestLoopbackOff: --no-loopback leaves lo out of a pcapng file, and a
// classic pcap file has it only with --loopback, then in the one
// interface the file has.
func TestLoopbackOff(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	js := filepath.Join(e.dir, "off.json")
	off := e.trace("off.pcapng", append([]string{"--no-loopback", "--summary", js}, loSteps("hello-off")...)...)
	pcap := e.trace("plain.pcap", loSteps("hello-pcap")...)
	both := e.trace("both.pcap", append([]string{"--loopback"}, loSteps("hello-both")...)...)
	for _, r := range []result{off, pcap, both} {
		if r.code != 0 {
			t.Fatalf("%s: exit %d", r.file, r.code)
		}
		info := tsharkOK(t, r.file)
		if !strings.Contains(info, "Number of interfaces in file: 1") {
			t.Errorf("%s: capinfos:\n%s", r.file, info)
		}
		if n := count(t, r.file, `udp.payload == "hello-up"`); n != 2 {
			t.Errorf("%s: %d frames of the upstream exchange, want 2", r.file, n)
		}
	}
	for _, r := range []result{off, pcap} {
		if n := count(t, r.file, "ip.addr == 127.0.0.1"); n != 0 {
			t.Errorf("%s: %d loopback frames, want none", r.file, n)
		}
		if strings.Contains(r.stderr, " on lo)") || strings.Contains(r.stderr, "Loopback conversations") {
			t.Errorf("%s: stderr speaks of lo:\n%s", r.file, r.stderr)
		}
	}
	loExchangeOnce(t, both.file, "hello-both", false)
	if !strings.Contains(both.stderr, " on lo), ") {
		t.Errorf("%s: the end message does not count lo", both.file)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"loopback": null`) {
		t.Errorf("--no-loopback summary: %s", b)
	}

	for _, args := range [][]string{
		{"--loopback", "--no-loopback", "true"},
		{"--no-loopback", "--interface", "lo"},
	} {
		code, _, stderr := runNoFail(e.cmd(args...))
		if code != exitFailure || !strings.Contains(stderr, "--loopback and --no-loopback") {
			t.Errorf("nsntrace %s: exit %d, %s", strings.Join(args, " "), code, stderr)
		}
	}
	e.clean("")
}

// TestLoopbackRotation: with -C every file describes both interfaces and
// has a statistics block for each; the loopback exchanges are in the
// files once.
func TestLoopbackRotation(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	r := e.trace("rot.pcapng", append([]string{"-C", "1k"}, append(loSteps("first-lo"), "lo-echo", "second-lo")...)...)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	var names []string
	for i := 0; i < 100; i++ {
		names = append(names, (rotation{size: 1}).name(r.file, i))
	}
	files, _ := rotated(t, names)
	if len(files) < 3 {
		t.Fatalf("%d files, want several", len(files))
	}
	payloads := 0
	for _, f := range files {
		info := tsharkOK(t, f)
		if !strings.Contains(info, "Number of interfaces in file: 2") {
			t.Errorf("%s: capinfos:\n%s", f, info)
		}
		if v, l := readISBOf(t, f, 0), readISBOf(t, f, 1); v.blocks != 1 || l.blocks != 1 || l.delivered != l.packets {
			t.Errorf("%s: statistics %+v (veth), %+v (lo); want one block each", f, v, l)
		}
		payloads += count(t, f, `frame.interface_name == "lo" && (tcp.payload == "first-lo" || tcp.payload == "second-lo")`)
	}
	if payloads != 4 {
		t.Errorf("%d frames of the loopback payloads in the files, want 4", payloads)
	}
	e.clean("")
}
