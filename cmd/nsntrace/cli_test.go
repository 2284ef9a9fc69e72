package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsntrace/nsntrace/pcapng"
)

func mustParse(t *testing.T, args ...string) *options {
	t.Helper()
	var out, errb bytes.Buffer
	o, err := parse(args, &out, &errb)
	if err != nil {
		t.Fatalf("parse(%q): %v", args, err)
	}
	return o
}

func TestParseProgramAndArgs(t *testing.T) {
	tests := []struct {
		args    []string
		program []string
		check   func(*options) bool
	}{
		// Everything after PROGRAM is PROGRAM's, flags included.
		{[]string{"-o", "f.pcapng", "ls", "-l", "-o", "x"}, []string{"ls", "-l", "-o", "x"},
			func(o *options) bool { return o.output == "f.pcapng" }},
		{[]string{"--", "-weird", "-h"}, []string{"-weird", "-h"}, nil},
		{[]string{"-q", "--", "ls"}, []string{"ls"}, func(o *options) bool { return o.quiet }},
		// No subcommand swallows a program name.
		{[]string{"help"}, []string{"help"}, nil},
		{[]string{"completion", "bash"}, []string{"completion", "bash"}, nil},
		{[]string{"version"}, []string{"version"}, nil},
		// The C nsntrace's command lines work unchanged.
		{[]string{"--outfile", "t.pcap", "-d", "eth0", "-f", "tcp port 80", "-u", "nobody", "--use-public-dns", "curl", "x"},
			[]string{"curl", "x"}, func(o *options) bool {
				return o.output == "t.pcap" && o.device == "eth0" && o.filter == "tcp port 80" &&
					o.user == "nobody" && o.publicDNS
			}},
		{[]string{"-s", "0", "-U", "-F", "pcap", "true"}, []string{"true"},
			func(o *options) bool { return o.snapLen == defaultSnapLen && o.packetBuffered && o.format == "pcap" }},
		{[]string{"true"}, []string{"true"}, func(o *options) bool {
			return o.output == "nsntrace.pcapng" && o.snapLen == 262144 && !o.quiet && o.filter == ""
		}},
	}
	for _, tc := range tests {
		o := mustParse(t, tc.args...)
		if !o.ran || !reflect.DeepEqual(o.program, tc.program) {
			t.Errorf("parse(%q): program %q (ran %v), want %q", tc.args, o.program, o.ran, tc.program)
		}
		if tc.check != nil && !tc.check(o) {
			t.Errorf("parse(%q): wrong options %+v", tc.args, o)
		}
	}
}

func TestParseUtilities(t *testing.T) {
	if o := mustParse(t, "--version"); !o.version || len(o.program) != 0 {
		t.Errorf("--version: %+v", o)
	}
	if o := mustParse(t, "--compile-filter", "udp"); !o.set["compile-filter"] || o.compileFilter != "udp" {
		t.Errorf("--compile-filter: %+v", o)
	}
	// The empty filter is a filter too (accept all).
	if o := mustParse(t, "--compile-filter", ""); !o.set["compile-filter"] {
		t.Errorf("--compile-filter '': %+v", o)
	}
	if o := mustParse(t, "--interface", "cap0", "-o", "/dev/null"); o.iface != "cap0" || o.output != "/dev/null" {
		t.Errorf("--interface: %+v", o)
	}
	if o := mustParse(t, "--cleanup"); !o.cleanup {
		t.Errorf("--cleanup: %+v", o)
	}
}

func TestParseHelp(t *testing.T) {
	var out, errb bytes.Buffer
	o, err := parse([]string{"--help"}, &out, &errb)
	if err != nil || o.ran {
		t.Fatalf("--help: ran %v, err %v", o != nil && o.ran, err)
	}
	help := out.String()
	for _, want := range []string{"nsntrace [flags] PROGRAM [ARGS...]", "--output", "--use-public-dns", "--compile-filter", "Exit status"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	for _, hidden := range []string{"--gen-docs", "completion"} {
		if strings.Contains(help, hidden) {
			t.Errorf("help shows %q:\n%s", hidden, help)
		}
	}
	// -h after PROGRAM is PROGRAM's.
	if o := mustParse(t, "ls", "-h"); !o.ran || !reflect.DeepEqual(o.program, []string{"ls", "-h"}) {
		t.Errorf("ls -h: %+v", o)
	}
}

func TestParseLimits(t *testing.T) {
	o := mustParse(t, "-C", "10", "-W", "5", "-G", "60", "-c", "100", "--duration", "1h30m", "-Z", "alice", "ls")
	want := rotation{size: 10_000_000, every: time.Minute, files: 5}
	if o.rot != want || o.count != 100 || o.duration != 90*time.Minute || o.owner != "alice" {
		t.Errorf("limits: %+v, want rotation %+v, 100 packets, 1h30m, owner alice", o, want)
	}
	if o := mustParse(t, "--file-size=2M", "--rotate-seconds=1", "--file-count=2", "--count=3", "--owner=0", "ls"); o.rot != (rotation{size: 2 << 20, every: time.Second, files: 2}) || o.count != 3 || o.owner != "0" {
		t.Errorf("long names: %+v", o)
	}
}

func TestParseBufferSize(t *testing.T) {
	if o := mustParse(t, "ls"); o.bufferKiB != 65536 {
		t.Errorf("default ring of %d KiB, want 64 MiB", o.bufferKiB)
	}
	if o := mustParse(t, "-s", "1500", "-B", "512", "ls"); o.bufferKiB != 512 {
		t.Errorf("-s 1500 -B 512: ring of %d KiB", o.bufferKiB)
	}
	if o := mustParse(t, "--buffer-size=2048", "ls"); o.bufferKiB != 2048 {
		t.Errorf("--buffer-size=2048: ring of %d KiB", o.bufferKiB)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "no program"},
		{[]string{"-o", "x"}, "no program"},
		{[]string{"--bogus", "ls"}, "unknown flag"},
		{[]string{"-F", "json", "ls"}, "pcapng or pcap"},
		{[]string{"-s", "-1", "ls"}, "--snaplen"},
		{[]string{"-s", "300000", "ls"}, "--snaplen"},
		{[]string{"-B", "511", "ls"}, "--buffer-size 511: must be between 512 (two of the ring's 256 KiB blocks at this snap length) and 1048576 KiB"},
		{[]string{"-B", "1048577", "ls"}, "--buffer-size 1048577"},
		{[]string{"-s", "1500", "-B", "256", "ls"}, "between 512 (two of the ring's 256 KiB blocks"},
		{[]string{"--version", "ls"}, "take no program"},
		{[]string{"--cleanup", "--version"}, "exclude each other"},
		{[]string{"--tls-keys", "-C", "1", "curl"}, "--tls-keys does not work with -C or -G"},
		{[]string{"--tls-keys", "-o", "x.pcap", "curl"}, "--tls-keys needs pcapng"},
		{[]string{"-o", "", "ls"}, "empty file name"},
		{[]string{"-u", "", "ls"}, "--user: empty user name"},
		{[]string{"--user=", "ls"}, "--user: empty user name"},
		{[]string{"--summary", "-", "-o", "-", "ls"}, "already carries the capture"},
		{[]string{"--summary", "", "ls"}, "--summary: empty file name"},
		{[]string{"--summary", "s.json", "--cleanup"}, "with a traced program or --interface only"},
		{[]string{"--summary", "-", "-o", "-", "--interface", "eth0"}, "already carries the capture"},
		// Rotation, limits and the files' owner.
		{[]string{"-C", "10", "-o", "-", "ls"}, "-C, -G and -W write several files, not standard output"},
		{[]string{"-G", "10", "-o", "-", "ls"}, "not standard output"},
		{[]string{"-C", "0", "ls"}, `-C "0": must be at least 1`},
		{[]string{"-C", "1.5", "ls"}, `-C "1.5": must be a whole number`},
		{[]string{"-C", "10kB", "ls"}, `-C "10kB": must be a whole number`},
		{[]string{"-G", "0", "ls"}, "-G 0: must be between 1"},
		{[]string{"-G", "x", "ls"}, "invalid argument"},
		{[]string{"-W", "3", "ls"}, "-W goes with -C or -G"},
		{[]string{"-C", "1", "-W", "0", "ls"}, "-W 0: must be at least 1 file"},
		{[]string{"-c", "0", "ls"}, "-c 0: must be at least 1 packet"},
		{[]string{"--duration", "0s", "ls"}, "--duration 0s: must be more than 0"},
		{[]string{"--duration", "5", "ls"}, "invalid argument"},
		{[]string{"-Z", "", "ls"}, "-Z: empty user name"},
		{[]string{"--no-processes", "--interface", "eth0"}, "--no-processes goes with a traced program"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		_, err := parse(tc.args, &out, &errb)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parse(%q) = %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--bogus"}, &out, &errb); code != exitFailure || !strings.Contains(errb.String(), "--help") {
		t.Errorf("usage error: exit %d, stderr %q", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"--version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "nsntrace ") {
		t.Errorf("--version: exit %d, stdout %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Usage:") {
		t.Errorf("-h: exit %d, stdout %q", code, out.String())
	}
}

func TestOutputFormat(t *testing.T) {
	tests := []struct {
		output, format string
		want           pcapng.Format
	}{
		{"nsntrace.pcapng", "", pcapng.FormatPcapNG},
		{"nsntrace.pcap", "", pcapng.FormatPcap},
		{"TRACE.PCAP", "", pcapng.FormatPcap},
		{"trace", "", pcapng.FormatPcapNG},
		{"-", "", pcapng.FormatPcapNG},
		{"trace.pcap", "pcapng", pcapng.FormatPcapNG},
		{"trace.pcapng", "pcap", pcapng.FormatPcap},
		{"-", "PCAP", pcapng.FormatPcap},
	}
	for _, tc := range tests {
		got, err := outputFormat(tc.output, tc.format)
		if err != nil || got != tc.want {
			t.Errorf("outputFormat(%q, %q) = %v, %v; want %v", tc.output, tc.format, got, err, tc.want)
		}
	}
	if _, err := outputFormat("x", "erf"); err == nil {
		t.Error("outputFormat accepted format erf")
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"curl", "-s", "http://example.test:8080/a?b=c", "it's", "", "a b"})
	want := `curl -s 'http://example.test:8080/a?b=c' 'it'\''s' '' 'a b'`
	if got != want {
		t.Errorf("shellQuote = %s\nwant         %s", got, want)
	}
}

func TestOutputCheck(t *testing.T) {
	dir := t.TempDir()
	ok := []string{filepath.Join(dir, "new.pcapng"), "-"}
	existing := filepath.Join(dir, "old.pcapng")
	if err := os.WriteFile(existing, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok = append(ok, existing)
	for _, p := range ok {
		if err := (&output{path: p}).check(); err != nil {
			t.Errorf("check(%s): %v", p, err)
		}
	}
	// check must not create or truncate anything.
	if b, _ := os.ReadFile(existing); string(b) != "keep" {
		t.Errorf("check changed %s: %q", existing, b)
	}
	if _, err := os.Stat(filepath.Join(dir, "new.pcapng")); err == nil {
		t.Error("check created the output")
	}
	for _, p := range []string{dir, filepath.Join(dir, "no/such/dir/f.pcapng"), filepath.Join(existing, "f.pcapng")} {
		if err := (&output{path: p}).check(); err == nil {
			t.Errorf("check(%s) passed", p)
		}
	}

	// abort removes only what the run created.
	o := &output{path: filepath.Join(dir, "made.pcapng")}
	if err := o.create(); err != nil || !o.created {
		t.Fatalf("create: %v (created %v)", err, o.created)
	}
	o.abort()
	if _, err := os.Stat(o.path); err == nil {
		t.Error("abort left a file the run created")
	}
	o = &output{path: existing}
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	if err := o.create(); err != nil || o.created {
		t.Fatalf("create existing: %v (created %v)", err, o.created)
	}
	o.abort()
	if b, err := os.ReadFile(existing); err != nil || string(b) != "keep" {
		t.Errorf("abort changed or removed a file that existed before: %q, %v", b, err)
	}
}

func TestCompileFilter(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--compile-filter", "udp port 53"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	// tcpdump -ddd: the count, then one "code jt jf k" line per instruction.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var n int
	if _, err := fmt.Sscan(lines[0], &n); err != nil || n != len(lines)-1 || n < 4 {
		t.Fatalf("not tcpdump -ddd output:\n%s", out.String())
	}
	for _, l := range lines[1:] {
		var code, jt, jf, k uint32
		if c, err := fmt.Sscan(l, &code, &jt, &jf, &k); c != 4 || err != nil {
			t.Fatalf("bad line %q", l)
		}
	}
	out.Reset()
	errb.Reset()
	// 125 like every other failure of nsntrace; "filter" said once.
	if code := run([]string{"--compile-filter", "tcp port"}, &out, &errb); code != exitFailure || out.Len() != 0 ||
		!strings.Contains(errb.String(), "bad filter") || !strings.Contains(errb.String(), "^") ||
		strings.Count(errb.String(), "filter") != 1 {
		t.Errorf("bad filter: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

// TestSummaryOverCapture checks that --summary naming the capture file,
// by whatever path or link, is refused before anything is created or
// changed. A usage error is exit 125 (TestRunExitCodes); parse, not run,
// so that a missing check can never start a trace in this namespace.
func TestSummaryOverCapture(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	existing := filepath.Join(dir, "old.pcapng")
	if err := os.WriteFile(existing, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(existing, filepath.Join(dir, "sym.pcapng")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(existing, filepath.Join(dir, "hard.pcapng")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(dir, "dirlink")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range [][2]string{ // --summary, -o
		{"new.pcapng", "new.pcapng"},
		{"./new.pcapng", filepath.Join(dir, "new.pcapng")},
		{"dirlink/new.pcapng", "new.pcapng"},
		{"sub/../new.pcapng", "new.pcapng"},
		{"old.pcapng", "old.pcapng"},
		{"sym.pcapng", "old.pcapng"},
		{"hard.pcapng", existing},
		{"dirlink/old.pcapng", "sym.pcapng"},
	} {
		var out, errb bytes.Buffer
		_, err := parse([]string{"--summary", tc[0], "-o", tc[1], "true"}, &out, &errb)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "are the same file") {
			t.Errorf("--summary %s -o %s: %v; want a usage error", tc[0], tc[1], err)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep" {
		t.Errorf("the capture file changed: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 {
		t.Errorf("something was created: %v", ents)
	}
	// Different files, and standard output, stay allowed.
	for _, args := range [][]string{
		{"--summary", "s.json", "-o", "old.pcapng", "true"},
		{"--summary", "-", "-o", "old.pcapng", "true"},
		{"--summary", "old.pcapng", "-o", "-", "true"},
	} {
		var out, errb bytes.Buffer
		if _, err := parse(args, &out, &errb); err != nil {
			t.Errorf("parse(%q): %v", args, err)
		}
	}
}

// TestLimitCompletions: -Z completes user names; the numbers and sizes
// of rotation and the limits complete nothing (not file names).
func TestLimitCompletions(t *testing.T) {
	cmd := newCommand(&options{})
	for flag, files := range map[string]bool{"owner": false, "file-size": false, "rotate-seconds": false,
		"file-count": false, "count": false, "duration": false} {
		fn, ok := cmd.GetFlagCompletionFunc(flag)
		if !ok {
			t.Errorf("--%s has no completion", flag)
			continue
		}
		out, dir := fn(cmd, nil, "")
		if dir&cobra.ShellCompDirectiveNoFileComp == 0 && !files {
			t.Errorf("--%s completes file names", flag)
		}
		if flag == "owner" && !slices.Contains(out, "root") {
			t.Errorf("-Z does not offer root: %q", out)
		}
	}
}
