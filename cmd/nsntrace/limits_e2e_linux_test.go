//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// Rotation (-C, -G, -W), the ends the user asks for (-c, --duration) and
// who owns the files (SUDO_UID, -Z), end to end.

// foreverSteps is a traced program that exits with status 7 on SIGTERM
// and meanwhile sends a datagram of size bytes to the upstream's echo
// server every 20 ms, for ever: it ends only when nsntrace stops it.
func foreverSteps(token string, size int) []string {
	return helper("token", token, "term-exit", "7",
		"udp-forever", testbed.UpstreamAddr.String()+":7", strings.Repeat("r", size))
}

var reCaptured = regexp.MustCompile(`Finished capturing: (\d+) packets? captured(?: \(\d+ on lo\))?, (\d+) packets? dropped`)

// captured is the packet count of the end message.
func captured(t *testing.T, r result) uint64 {
	t.Helper()
	m := reCaptured.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no end message with the counts")
	}
	if m[2] != "0" {
		t.Logf("the kernel dropped %s packets", m[2]) // the sums below still hold
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// rotated returns the files of a run, named from base, that exist, in
// the order of names, each read with tshark (which must not complain)
// and with its blocks counted.
func rotated(t *testing.T, names []string) (present []string, counts []isbCounts) {
	t.Helper()
	for _, n := range names {
		if _, err := os.Stat(n); err != nil {
			continue
		}
		tsharkOK(t, n)
		present = append(present, n)
		counts = append(counts, readISB(t, n))
	}
	return present, counts
}

// TestRotateBySize: -C 20k starts a new file once one holds more than
// 20 KiB; -c 300 ends the trace after exactly 300 packets; every packet
// is in exactly one file, each file stands alone (its own section
// header, interface and statistics block, which counts its packets) and
// tshark reads it without a warning. The program stopped by -c exits
// with its own status.
func TestRotateBySize(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	token := fmt.Sprintf("nsntrace-e2e-rotsize-%d-%d", os.Getpid(), time.Now().UnixNano())
	r := e.trace("s.pcapng", append([]string{"-C", "20k", "-c", "300"}, foreverSteps(token, 1000)...)...)
	if r.code != 7 {
		t.Errorf("exit %d, want the program's status on SIGTERM, 7", r.code)
	}
	if !strings.Contains(r.stderr, "-c 300: 300 packets captured: stopping ") {
		t.Error("no line saying -c ended the trace")
	}
	n := captured(t, r)
	var names []string
	for i := 0; i < 100; i++ {
		names = append(names, (rotation{size: 1}).name(r.file, i))
	}
	files, counts := rotated(t, names)
	var sum uint64
	for i, c := range counts {
		sum += c.packets
		fi, _ := os.Stat(files[i])
		t.Logf("%s: %d bytes, %d packets, isb_usrdeliv %d, isb_filteraccept %d", files[i], fi.Size(), c.packets, c.delivered, c.accepted)
		if c.blocks != 1 || c.delivered != c.packets || c.packets == 0 {
			t.Errorf("%s: %d statistics blocks saying %d packets, %d packets in it; want 1 block that counts them", files[i], c.blocks, c.delivered, c.packets)
		}
		if last := i == len(files)-1; !last && (fi.Size() <= 20<<10 || fi.Size() > 20<<10+2000) {
			t.Errorf("%s: %d bytes: rotated not just past 20 KiB", files[i], fi.Size())
		}
		if want := (rotation{size: 1}).name(r.file, i); files[i] != want {
			t.Errorf("file %d is %s, want %s", i, files[i], want)
		}
	}
	if n != 300 || sum != n || len(files) < 10 {
		t.Errorf("%d files holding %d packets, %d captured; want 300 in at least 10 files", len(files), sum, n)
	}
	e.clean(token)
}

// TestRotateNames: each file of a rotating trace has the host names
// learned so far in its name resolution block, not only the last one.
func TestRotateNames(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	token := fmt.Sprintf("nsntrace-e2e-rotnames-%d-%d", os.Getpid(), time.Now().UnixNano())
	up := testbed.UpstreamAddr.String() + ":7"
	big := strings.Repeat("n", 1200)
	r := e.trace("n.pcapng", append([]string{"-C", "2k"},
		helper("token", token, "dns", "resolv.conf", "udp", up, big, "udp", up, big, "udp", up, big)...)...)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	want := testbed.ServerAddr.String() + "\twww.example.test"
	var named int
	for i := 0; i < 50; i++ {
		f := (rotation{size: 1}).name(r.file, i)
		if _, err := os.Stat(f); err != nil {
			break
		}
		tsharkOK(t, f)
		hosts, err := execOutput("tshark", "-r", f, "-q", "-z", "hosts")
		if err != nil {
			t.Fatal(err)
		}
		if c := readISB(t, f); c.packets == 0 {
			t.Errorf("%s holds no packet", f)
		}
		if strings.Contains(hosts, want) {
			named++
		} else if named > 0 {
			t.Errorf("%s lacks the name learned in an earlier file:\n%s", f, hosts)
		}
	}
	if named < 3 {
		t.Errorf("%d files name %s; want the three files of the datagrams after the query, at least", named, want)
	}
	e.clean(token)
}

// TestRotateRing: with -W 3, -C keeps only the last three files,
// FILE0 to FILE2, each replacing the oldest; classic pcap files (-F
// pcap) each have their own header.
func TestRotateRing(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	token := fmt.Sprintf("nsntrace-e2e-ring-%d-%d", os.Getpid(), time.Now().UnixNano())
	r := e.trace("ring", append([]string{"-F", "pcap", "-C", "20k", "-W", "3", "-c", "300"}, foreverSteps(token, 1000)...)...)
	m := regexp.MustCompile(`written to (\d+) files, the last of them (\S+) \(-W 3: only the last 3 are kept\)`).FindStringSubmatch(r.stderr)
	if r.code != 7 || m == nil {
		t.Fatalf("exit %d, want 7 and a message naming the files", r.code)
	}
	made, _ := strconv.Atoi(m[1])
	var sum int
	for i := 0; i < 3; i++ {
		f := fmt.Sprintf("%s%d", r.file, i)
		if info := tsharkOK(t, f); !regexp.MustCompile(`File type:\s+(nsec)?pcap\n`).MatchString(info) {
			t.Errorf("%s is not classic pcap:\n%s", f, info)
		}
		k := count(t, f, "")
		t.Logf("%s: %d packets", f, k)
		sum += k
	}
	for _, extra := range []string{r.file, r.file + "3", r.file + "00"} {
		if _, err := os.Stat(extra); err == nil {
			t.Errorf("%s exists: a ring of 3 has the names ring0 to ring2", extra)
		}
	}
	if want := fmt.Sprintf("%s%d", r.file, (made-1)%3); m[2] != want {
		t.Errorf("the last file is %s, want %s", m[2], want)
	}
	// 20 datagrams or echoes of 1042 bytes fill a file: the three kept
	// hold the last 60 or so of the 300, the older files were replaced.
	if made < 10 || sum < 40 || sum > 80 {
		t.Errorf("%d files made, the 3 kept hold %d packets; want 10 or more made, about 60 kept", made, sum)
	}
	e.clean(token)
}

// TestRotateByTime: -G 1 starts a new file every second; with -W 3 and
// no -C the trace ends after the third file, as tcpdump does, and the
// packets over the files are those captured.
func TestRotateByTime(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	token := fmt.Sprintf("nsntrace-e2e-rottime-%d-%d", os.Getpid(), time.Now().UnixNano())
	start := time.Now()
	r := e.trace("g.pcapng", append([]string{"-G", "1", "-W", "3"}, foreverSteps(token, 100)...)...)
	if took := time.Since(start); r.code != 7 || took > 20*time.Second {
		t.Errorf("exit %d after %v, want 7 after about 3 s", r.code, took)
	}
	if !strings.Contains(r.stderr, "-W 3: 3 files written: stopping ") {
		t.Error("no line saying the last file ended the trace")
	}
	files, counts := rotated(t, []string{r.file, r.file + "0", r.file + "1", r.file + "2", r.file + "3"})
	var sum uint64
	for i, c := range counts {
		t.Logf("%s: %d packets", files[i], c.packets)
		sum += c.packets
		if c.blocks != 1 || c.delivered != c.packets || c.packets < 20 {
			t.Errorf("%s: %d statistics blocks, %d packets; want 1 and a second's worth", files[i], c.blocks, c.packets)
		}
	}
	if n := captured(t, r); len(files) != 3 || files[0] != r.file+"0" || sum != n {
		t.Errorf("files %v hold %d packets, %d captured; want g.pcapng0 to g.pcapng2 holding them all", files, sum, n)
	}
	e.clean(token)
}

// TestDuration: --duration ends a program that would run for ever, as
// ctrl-c does, and nsntrace exits with the program's status; in
// --interface mode it ends the capture, with status 0.
func TestDuration(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	token := fmt.Sprintf("nsntrace-e2e-duration-%d-%d", os.Getpid(), time.Now().UnixNano())
	start := time.Now()
	r := e.trace("d.pcapng", append([]string{"--duration", "2s"}, foreverSteps(token, 10)...)...)
	took := time.Since(start)
	if r.code != 7 || took < 2*time.Second || took > 15*time.Second {
		t.Errorf("exit %d after %v, want 7 after 2 s", r.code, took)
	}
	if !strings.Contains(r.stderr, "--duration 2s passed: stopping ") {
		t.Error("no line saying --duration ended the trace")
	}
	if c := readISB(t, r.file); c.blocks != 1 || c.packets < 50 || c.packets != captured(t, r) {
		t.Errorf("%d statistics blocks, %d packets; want 1 and 2 s worth, all captured", c.blocks, c.packets)
	}
	e.clean(token)

	file := filepath.Join(e.dir, "iface.pcapng")
	cmd := e.cmd("--interface", e.in.UplinkH, "--duration", "1s", "-c", "1000", "-o", file)
	start = time.Now()
	code, _, se := runNoFail(cmd)
	if took := time.Since(start); code != 0 || took < time.Second || took > 15*time.Second ||
		!strings.Contains(se, "--duration 1s passed: capture ended.") {
		t.Errorf("--interface --duration 1s: exit %d after %v, stderr:\n%s", code, took, se)
	}
}

// TestCountInterface: -c ends an --interface capture after exactly COUNT
// packets, with status 0, while more keep coming.
func TestCountInterface(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	file := filepath.Join(e.dir, "c.pcapng")
	cmd := e.cmd("--interface", e.in.UplinkH, "-f", "udp port 7", "-c", "3", "-o", file)
	var se testbed.SyncBuffer
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; {
		e.in.H.Run(t, "env", helperEnv+"=1", os.Args[0], "udp", testbed.UpstreamAddr.String()+":7", "counted")
		select {
		case err = <-done:
		case <-time.After(100 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
			cmd.Process.Signal(os.Interrupt)
			err = <-done
			t.Error("-c 3 did not end the capture")
		}
		break
	}
	t.Logf("stderr:\n%s", se.String())
	if err != nil || !strings.Contains(se.String(), "-c 3: 3 packets captured: capture ended.") {
		t.Errorf("exit %v, want 0 and a line saying -c ended the capture", err)
	}
	if c := readISB(t, file); c.packets != 3 || c.blocks != 1 {
		t.Errorf("%d packets, %d statistics blocks; want 3 and 1", c.packets, c.blocks)
	}
}

// TestOwner: run through sudo (SUDO_UID, SUDO_GID), the capture files
// and the summary belong to the user who ran sudo; -Z names the owner
// itself (a UID nobody has: its group is the same number).
func TestOwner(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	token := fmt.Sprintf("nsntrace-e2e-owner-%d-%d", os.Getpid(), time.Now().UnixNano())
	for _, tc := range []struct {
		name     string
		env      []string
		args     []string
		uid, gid uint32
	}{
		{"sudo", []string{"SUDO_UID=12345", "SUDO_GID=23456"}, nil, 12345, 23456},
		{"Z", []string{"SUDO_UID=12345", "SUDO_GID=23456"}, []string{"-Z", "12346"}, 12346, 12346},
		{"root", nil, nil, 0, 0},
	} {
		dir := filepath.Join(e.dir, tc.name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		file, sum := filepath.Join(dir, "o.pcapng"), filepath.Join(dir, "o.json")
		args := append(append([]string{"-o", file, "--summary", sum, "-C", "2k"}, tc.args...),
			helper("token", token, "udp", testbed.UpstreamAddr.String()+":7", strings.Repeat("o", 1200), "udp", testbed.UpstreamAddr.String()+":7", "o")...)
		cmd := e.cmd(args...)
		cmd.Env = append(os.Environ(), tc.env...)
		if code, _, se := runNoFail(cmd); code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.name, code, se)
		}
		for _, f := range []string{file, file + "1", sum} {
			fi, err := os.Stat(f)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != tc.uid || st.Gid != tc.gid {
				t.Errorf("%s: %s belongs to %d:%d, want %d:%d", tc.name, f, st.Uid, st.Gid, tc.uid, tc.gid)
			}
		}
	}
	e.clean(token)
}

// TestBufferSize: -B sizes each ring the kernel maps for nsntrace, the
// veth's and lo's, as /proc/PID/maps shows the packet sockets' mappings.
func TestBufferSize(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	e = &e2e{t: t, in: e.in, bin: e.bin, dir: t.TempDir()}
	token := fmt.Sprintf("nsntrace-e2e-ring-%d-%d", os.Getpid(), time.Now().UnixNano())
	var se testbed.SyncBuffer
	cmd := e.startForever(filepath.Join(e.dir, "b.pcapng"), token, &se, "-B", "3072")
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		waitEnd(t, cmd, "SIGTERM")
		e.clean(token)
	}()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var sizes []uint64
	for _, l := range strings.Split(string(maps), "\n") {
		if !strings.Contains(l, "socket:[") {
			continue
		}
		var lo, hi uint64
		if _, err := fmt.Sscanf(l, "%x-%x", &lo, &hi); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		sizes = append(sizes, hi-lo)
	}
	if len(sizes) != 2 || sizes[0] != 3<<20 || sizes[1] != 3<<20 {
		t.Errorf("-B 3072: the packet sockets' mappings are %v bytes, want two rings of 3 MiB\n%s", sizes, maps)
	}
}
