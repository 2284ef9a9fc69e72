package pcapng

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// The oracle tests have Wireshark's own readers judge our files: tshark
// and capinfos must read them without a word on stderr and see what we
// claim to have written. They fail rather than skip without tshark when
// NSNTRACE_REQUIRE_PRIVILEGED=1 (testbed.RequireTool).

// rootWarning is what tshark says on stderr whenever it runs as root; it
// is about the user, not about the file.
const rootWarning = `Running as user "root" and group "root". This could be dangerous.`

// oracleCmd returns a function making a command for a Wireshark tool with
// a throwaway configuration directory, so that a user's preferences cannot
// change the output; testbed.Start and testbed.Output take it.
func oracleCmd(t *testing.T, tool string, args ...string) func() *exec.Cmd {
	t.Helper()
	path := testbed.RequireTool(t, tool)
	home := t.TempDir()
	return func() *exec.Cmd {
		cmd := exec.Command(path, args...)
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
		return cmd
	}
}

// oracle runs a Wireshark tool and returns its standard output. It fails
// the test on a non-zero exit or on anything on stderr.
func oracle(t *testing.T, tool string, args ...string) string {
	t.Helper()
	stdout, stderr, err := testbed.Output(t, oracleCmd(t, tool, args...))
	if complaint := complaints(string(stderr)); err != nil || complaint != "" {
		t.Fatalf("%s %q: %v\nstderr:\n%s", tool, args, err, complaint)
	}
	return string(stdout)
}

func complaints(stderr string) string {
	var keep []string
	for line := range strings.Lines(stderr) {
		if strings.TrimSpace(line) != rootWarning {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}

// writeTemp writes the sample in the given format to a temporary file.
func writeTemp(t *testing.T, s *sample, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, s.write(t), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func epoch(ns int64) string { return fmt.Sprintf("%d.%09d", ns/1e9, ns%1e9) }

// TestOracleTshark: tshark sees every packet with its interface, name,
// direction, comment, lengths, nanosecond timestamp and drop count.
func TestOracleTshark(t *testing.T) {
	s := newSample(t)
	path := writeTemp(t, s, "sample.pcapng")
	out := oracle(t, "tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=|",
		"-e", "frame.interface_id", "-e", "frame.interface_name", "-e", "frame.packet_flags_direction",
		"-e", "frame.comment", "-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.time_epoch",
		"-e", "frame.drop_count")
	var want []string
	for _, p := range s.packets {
		dir, drops := "", ""
		if p.Direction != 0 || p.Reception != 0 {
			dir = fmt.Sprintf("0x%08x", uint32(p.Direction))
		}
		if p.DropCount != 0 {
			drops = fmt.Sprint(p.DropCount)
		}
		want = append(want, strings.Join([]string{
			fmt.Sprint(p.Interface), s.ifaces[p.Interface].Name, dir, p.Comment,
			fmt.Sprint(origLen(&p)), fmt.Sprint(len(p.Data)), epoch(p.Timestamp), drops,
		}, "|"))
	}
	if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("tshark fields:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The verbose dissection of the first packet names the direction and
	// the comment as Wireshark shows them to a person.
	v := oracle(t, "tshark", "-n", "-r", path, "-V", "-c1")
	for _, w := range []string{
		"Packet comments\n    " + s.packets[0].Comment + "\n",
		"Interface name: " + s.ifaces[0].Name,
		"Direction: Outbound (0x2)",
		"Frame Length: 74 bytes",
	} {
		if !strings.Contains(v, w) {
			t.Errorf("tshark -V -c1 lacks %q:\n%s", w, v)
		}
	}
}

// TestOracleCapinfos: capinfos sees the section and interface metadata,
// the nanosecond resolution and the name records.
func TestOracleCapinfos(t *testing.T) {
	s := newSample(t)
	path := writeTemp(t, s, "sample.pcapng")
	out := oracle(t, "capinfos", "-M", path)
	want := []string{
		"File type:           pcapng",
		"File timestamp precision:  nanoseconds (9)",
		fmt.Sprintf("Number of packets:   %d", len(s.packets)),
		"Capture hardware:    " + s.cfg.Hardware,
		"Capture oper-sys:    " + s.cfg.OS,
		"Capture application: " + s.cfg.UserAppl,
		fmt.Sprintf("Number of interfaces in file: %d", len(s.ifaces)),
		"Number of resolved IPv4 addresses in file: 1",
		"Number of resolved IPv6 addresses in file: 2", // one per name
	}
	for _, c := range s.cfg.Comments {
		want = append(want, "Capture comment:     "+c)
	}
	for i, ifc := range s.ifaces {
		want = append(want, fmt.Sprintf("Interface #%d info:", i), "Name = "+ifc.Name,
			fmt.Sprintf("Capture length = %d", ifc.SnapLen), "Time precision = nanoseconds (9)")
	}
	want = append(want, "Description = traced veth", "Filter string = udp or tcp",
		"Operating system = "+s.ifaces[0].OS, "Number of stat entries = 1")
	lines := map[string]bool{}
	for line := range strings.Lines(out) {
		lines[strings.TrimSpace(line)] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("capinfos lacks %q:\n%s", w, out)
		}
	}
}

// TestOracleBlocks has Wireshark dissect the file itself (its pcapng file
// format dissector) to see what no packet view shows: the statistics
// counters, the name records, and no expert complaint about any block.
func TestOracleBlocks(t *testing.T) {
	s := newSample(t)
	path := writeTemp(t, s, "sample.pcapng")
	args := []string{"-n", "-r", path, "-X", "read_format:MIME Files Format"}
	out := oracle(t, "tshark", append(args, "-T", "fields", "-E", "separator=|",
		"-e", "pcapng.options.option.data.interface.dropped_by_os",
		"-e", "pcapng.options.option.data.interface.dropped",
		"-e", "pcapng.options.option.data.interface.accepted_by_filter",
		"-e", "pcapng.options.option.data.interface.delivered_to_user",
		"-e", "pcapng.records.record.data.name",
		"-e", "pcapng.options.option.data.interface.filter.string")...)
	want := "2,5|1|7|6,1|dns.example,v6.example,alias.example|udp or tcp\n"
	if out != want {
		t.Errorf("file dissection: %q, want %q", out, want)
	}
	if expert := oracle(t, "tshark", append(args, "-q", "-z", "expert")...); strings.TrimSpace(expert) != "" {
		t.Errorf("expert information about the file:\n%s", expert)
	}
}

// TestOracleNames: tshark shows the recorded names for the packets after
// the name block without asking any resolver (external resolution off).
func TestOracleNames(t *testing.T) {
	s := newSample(t)
	path := writeTemp(t, s, "sample.pcapng")
	out := oracle(t, "tshark", "-N", "n", "-o", "nameres.use_external_name_resolver:FALSE",
		"-o", "nameres.hosts_file_handling:FALSE", "-r", path, "-T", "fields", "-E", "separator=|",
		"-e", "ip.dst_host", "-e", "ipv6.dst_host")
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != len(s.packets) {
		t.Fatalf("%d lines:\n%s", len(got), out)
	}
	// Packet 0 precedes the name block (its DNS answer would); packets 3
	// and 5 follow it.
	if got[5] != "dns.example|" {
		t.Errorf("packet 5 to %s: %q, want dns.example", ipServer, got[5])
	}
	if got[3] != "|v6.example" && got[3] != "|alias.example" {
		t.Errorf("packet 3 to %s: %q, want one of its names", ip6Server, got[3])
	}
}

// TestOraclePcap: tshark and capinfos read the classic pcap file as
// nanosecond pcap with the right packets.
func TestOraclePcap(t *testing.T) {
	s := newSample(t).pcapOnly()
	path := writeTemp(t, s, "sample.pcap")
	out := oracle(t, "tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=|",
		"-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.time_epoch")
	var want []string
	for _, p := range s.packets {
		want = append(want, fmt.Sprintf("%d|%d|%s", origLen(&p), len(p.Data), epoch(p.Timestamp)))
	}
	if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("tshark fields:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	info := oracle(t, "capinfos", "-M", path)
	for _, w := range []string{"File type:           nsecpcap", "File timestamp precision:  nanoseconds (9)",
		"Packet size limit:   file hdr: 262144 bytes", fmt.Sprintf("Number of packets:   %d", len(s.packets))} {
		if !strings.Contains(info, w) {
			t.Errorf("capinfos lacks %q:\n%s", w, info)
		}
	}
}

// TestOracleStream: what Flush pushes into a pipe is read by `tshark -r -`
// at once, before the writer writes more or closes: live output works.
func TestOracleStream(t *testing.T) {
	for _, format := range []Format{FormatPcapNG, FormatPcap} {
		t.Run(format.String(), func(t *testing.T) {
			newCmd := oracleCmd(t, "tshark", "-n", "-l", "-r", "-", "-T", "fields", "-e", "frame.number", "-e", "frame.len")
			var (
				stdin  io.WriteCloser
				stdout io.ReadCloser
				stderr bytes.Buffer
			)
			cmd, err := testbed.Start(t, func() *exec.Cmd {
				cmd := newCmd()
				stderr.Reset()
				cmd.Stderr = &stderr
				var err error
				if stdin, err = cmd.StdinPipe(); err == nil {
					stdout, err = cmd.StdoutPipe()
				}
				if err != nil {
					t.Fatal(err)
				}
				return cmd
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cmd.Process.Kill() // best effort: it has normally exited already
				_ = cmd.Wait()
			})
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			w, err := NewWriter(stdin, &Config{Format: format})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet, Name: "veth0"}); err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 3; i++ {
				p := &Packet{Timestamp: int64(i), Data: udpFrame(t, ipProgram, ipServer, 60+i), Direction: DirectionOutbound}
				if err := w.WritePacket(p); err != nil {
					t.Fatal(err)
				}
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
				// A stuck reader is a failure, not a hang of the whole
				// test binary; the bound is generous.
				select {
				case line := <-lines:
					if want := fmt.Sprintf("%d\t%d", i, 60+i); line != want {
						t.Fatalf("tshark printed %q, want %q", line, want)
					}
				case <-time.After(time.Minute):
					t.Fatalf("tshark printed nothing for packet %d after Flush; stderr: %s", i, stderr.String())
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := stdin.Close(); err != nil {
				t.Fatal(err)
			}
			for line := range lines {
				t.Errorf("unexpected output %q", line)
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("tshark: %v", err)
			}
			if c := complaints(stderr.String()); c != "" {
				t.Errorf("tshark stderr: %s", c)
			}
		})
	}
}
