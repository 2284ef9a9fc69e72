package filter

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

func TestFormatGolden(t *testing.T) {
	prog := compileOK(t, "ip")
	if got, want := FormatDDD(prog), "4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n"; got != want {
		t.Errorf("FormatDDD\n%s\nwant\n%s", got, want)
	}
	want := "(000) ldh      [12]\n" +
		"(001) jeq      #0x800           jt 2\tjf 3\n" +
		"(002) ret      #262144\n" +
		"(003) ret      #0\n"
	if got := Disassemble(prog); got != want {
		t.Errorf("Disassemble\n%q\nwant\n%q", got, want)
	}
}

// fmtParseDDD reads `tcpdump -ddd` output.
func fmtParseDDD(t *testing.T, s string) []bpf.RawInstruction {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(s), "\n")
	n, err := strconv.Atoi(lines[0])
	if err != nil || n != len(lines)-1 {
		t.Fatalf("bad -ddd output %q", s)
	}
	var prog []bpf.RawInstruction
	for _, l := range lines[1:] {
		var f [4]uint64
		for i, w := range strings.Fields(l) {
			f[i], err = strconv.ParseUint(w, 10, 32)
			if err != nil {
				t.Fatalf("bad -ddd line %q", l)
			}
		}
		prog = append(prog, bpf.RawInstruction{Op: uint16(f[0]), Jt: uint8(f[1]), Jf: uint8(f[2]), K: uint32(f[3])})
	}
	return prog
}

// TestFormatMatchesTcpdump prints libpcap's own programs with FormatDDD
// and Disassemble and compares the text with tcpdump's -ddd and -d.
func TestFormatMatchesTcpdump(t *testing.T) {
	testbed.RequireTool(t, "tcpdump")
	for _, expr := range []string{
		"tcp port 80", "tcp[tcpflags] & tcp-syn != 0", "len > 100", "inbound", "outbound",
		"ip[0] << 2 >> 1 ^ 3 | 4 = 1", "ip[2:2] / 3 * 2 - 1 + 7 & 3 = 1", "ip[2:2] % 5 = 1",
		"0 - ip[8] = 4", "tcp[-20] = 1", "ether[-1] = 1", "ip[-3] = 1", "ip[0] + 4294967295 = 2", "ether host 1:2:3:4:5:6", "icmp6 and ip6 net ff00::/8", "udp portrange 1-1000",
	} {
		for _, opt := range []string{"", "-O"} {
			args := []string{"-y", "EN10MB", expr}
			if opt != "" {
				args = append([]string{opt}, args...)
			}
			ddd, stderr, err := testbed.Output(t, func() *exec.Cmd { return exec.Command("tcpdump", append([]string{"-ddd"}, args...)...) })
			if err != nil {
				t.Fatalf("tcpdump -ddd %q: %v: %s", expr, err, stderr)
			}
			d, stderr, err := testbed.Output(t, func() *exec.Cmd { return exec.Command("tcpdump", append([]string{"-d"}, args...)...) })
			if err != nil {
				t.Fatalf("tcpdump -d %q: %v: %s", expr, err, stderr)
			}
			prog := fmtParseDDD(t, string(ddd))
			if got := FormatDDD(prog); got != string(ddd) {
				t.Errorf("%q: FormatDDD\n%s\ntcpdump -ddd\n%s", expr, got, ddd)
			}
			if got := Disassemble(prog); got != string(d) {
				t.Errorf("%q: Disassemble\n%s\ntcpdump -d\n%s", expr, got, d)
			}
		}
	}
}
