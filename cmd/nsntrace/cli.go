package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spf13/pflag"

	"github.com/nsntrace/nsntrace/child"
	"github.com/nsntrace/nsntrace/internal/policy"
	"github.com/nsntrace/nsntrace/nft"
	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
)

// Exit codes of nsntrace itself (child's, in the convention of env(1),
// timeout(1) and `docker run`); otherwise nsntrace exits with the
// program's status (128+N when it was killed by signal N).
const (
	exitFailure       = child.ExitFailure
	exitCannotExecute = child.ExitCannotExecute
	exitNotFound      = child.ExitNotFound
	// exitViolation is nsntrace's status when the program exited 0 but
	// broke the egress policy (--allow, --policy): CI fails on it. Apart
	// from 125-127 (nsntrace's own) and 128+N (signals), and from the 1
	// and 2 that programs commonly use for their own failures.
	exitViolation = 124
)

// defaultSnapLen is the default snapshot length, tcpdump's: the most
// Wireshark and libpcap take, and more than the kernel hands a packet
// socket for one GSO packet on a veth.
const defaultSnapLen = pcapng.DefaultSnapLen

// maxBufferKiB is the largest ring -B takes, 1 GiB: within an int on
// 32-bit CPUs, and more kernel memory than a trace should ever pin.
const maxBufferKiB = 1 << 20

// genDocsFunc writes the man page and shell completions; set only in the
// documentation build (docs.go, build tag gendocs).
var genDocsFunc func(dir string) error

// options holds everything the command line says.
type options struct {
	output         string
	format         string
	device         string
	filter         string
	user           string
	publicDNS      bool
	snapLen        int
	bufferKiB      int // -B: each ring's size
	packetBuffered bool
	quiet          bool
	version        bool
	compileFilter  string
	cleanup        bool
	summary        string
	genDocs        string
	iface          string
	waitAll        bool
	tlsKeys        bool
	loopback       bool          // --loopback
	noLoopback     bool          // --no-loopback
	noProcesses    bool          // --no-processes
	fileSize       string        // -C, as given
	rotateSeconds  int           // -G
	fileCount      int           // -W
	count          int           // -c
	duration       time.Duration // --duration
	owner          string        // -Z
	publish        []string      // -p, as given
	allow          []string      // --allow, as given
	allowFile      string        // --allow-file
	policyMode     string        // --policy
	suggestPolicy  string        // --suggest-policy

	// ports is -p, parsed.
	ports []nft.Port

	// rules are --allow and --allow-file, parsed; enforce says
	// --policy enforce (else audit, when there are rules).
	rules   []policy.Rule
	enforce bool

	// rot is -C, -G and -W, checked.
	rot rotation

	// program is PROGRAM and its arguments, untouched.
	program []string
	// ran is set when the command line was complete (not -h).
	ran bool
	// set records which flags were given.
	set map[string]bool
}

const longHelp = `nsntrace runs PROGRAM (and everything it starts) in a network namespace of its
own, joined to the host by a veth pair with NAT, and records every packet the
program sends or receives into a pcapng file: which hosts, names, ports and
protocols it talks to, exactly as the program saw them.

Everything after PROGRAM belongs to PROGRAM; use -- before a PROGRAM whose name
starts with a dash. There are no subcommands: "nsntrace help" traces a program
named help.

Processes: each connection names the process of the traced program that
owned its socket (pid as the program's PID namespace numbers it, command
name, command line), in the summary and as a comment on its first packet;
a connection over before it was looked up stays unnamed. --no-processes
turns this off.

Loopback: the program's own lo is captured too, as a second interface "lo"
of the pcapng file, each packet once and without a direction; --no-loopback
leaves it out. Classic pcap has one interface: there lo is captured only with
--loopback, into the same file.

Signals: ctrl-c, SIGTERM, SIGHUP, SIGQUIT, SIGABRT (and fault signals sent
with kill) stop PROGRAM (SIGTERM, SIGKILL 2 seconds later or at a second
signal), complete the file and exit 128+N. SIGUSR1 prints the counters on
stderr; SIGUSR2 flushes the file so that readers see the packets so far.

Limits: -c COUNT, --duration D and the last file of -G with -W end the trace
as ctrl-c does (SIGTERM, then SIGKILL), with PROGRAM's own exit status. With
--interface they end the capture, with status 0.

Files: with -C or -G the capture goes to FILE, FILE1, FILE2, ...; with -W N to
FILE0 ... FILE(N-1), zero-padded to the width of N-1, going round and
replacing the oldest (tcpdump's names; FILE is not a strftime pattern). Each
file stands alone, with its own headers, names and statistics. Run with sudo,
the capture and summary files belong to the user who ran sudo (SUDO_UID,
SUDO_GID); -Z USER names the owner; otherwise root.

Publishing: -p 8080:80 sends connections to port 8080 of any host address to
PROGRAM's port 80 (DNAT in the run's firewall table); PROGRAM sees the client's
own address. From the host itself, its addresses reach PROGRAM the same way;
127.0.0.1 and ::1 reach it through a forwarder in nsntrace (loopback packets
cannot be routed to the veth without changing host-wide settings), so PROGRAM
sees those clients as the gateway address. A host port another program holds,
or another run publishes, is refused before anything is set up.

Egress policy: --allow RULE (repeatable) and --allow-file FILE (one rule a
line, # comments) say where PROGRAM may connect. A rule is a name
(api.github.com), a wildcard (*.pythonhosted.org: the names below it), an
address or a prefix (10.0.0.0/8, 2001:db8::/32), each with an optional :PORT
and /tcp or /udp ([2001:db8::1]:443/tcp for IPv6 with a port). PROGRAM's DNS
goes through nsntrace's relay: a name rule allows the addresses of the DNS
answers for that name (CNAME chains followed, for the answer's TTL, at
least 30 s), lookups of names no rule allows are violations, and the DNS
server itself is always allowed. --policy audit (the default) blocks
nothing and reports every violation; --policy enforce refuses them at once
(TCP reset, ICMP admin-prohibited, DNS REFUSED). Violations are listed at the
end, in the summary's "violations", and as comments on the first packet of
each violating connection. --suggest-policy FILE writes the rules that allow
exactly what the run did.

Exit status: PROGRAM's own (also when -c, --duration or -G -W ended the
trace); 124 when PROGRAM exited 0 but broke the egress policy; 128+N when it
was killed by signal N, or when signal N stopped the trace; 125 when
nsntrace itself failed; 126 when PROGRAM cannot be executed; 127 when it was
not found.`

const examples = `  sudo nsntrace -o trace.pcapng curl -s http://example.com/
  sudo nsntrace -f 'tcp port 443' -u alice ./mybinary --verbose
  sudo nsntrace -o - wget -q http://example.com/ | tshark -r -
  sudo nsntrace --duration 1h -C 100 -W 10 -o svc.pcapng ./server
  nsntrace --compile-filter 'tcp[tcpflags] & tcp-syn != 0'`

// newCommand builds the command line. It parses into o; doing the work is
// left to the caller, so that parsing is testable alone.
func newCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "nsntrace [flags] PROGRAM [ARGS...]",
		Short:   "Trace the network traffic of one program",
		Long:    longHelp,
		Example: examples,
		Args:    cobra.ArbitraryArgs,
		// Errors and usage are printed by run, once, in our words.
		SilenceErrors:     true,
		SilenceUsage:      true,
		ValidArgsFunction: completeProgram,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.program = args
			o.ran = true
			o.set = map[string]bool{}
			cmd.Flags().Visit(func(f *pflag.Flag) { o.set[f.Name] = true })
			return nil
		},
		DisableFlagsInUseLine: true,
	}
	// No subcommand may swallow a program name: no "completion" command
	// (completion scripts come from --gen-docs), and cobra adds "help"
	// only to commands that have subcommands, which this one never has.
	cmd.CompletionOptions.DisableDefaultCmd = true

	f := cmd.Flags()
	// Everything after PROGRAM is PROGRAM's: `nsntrace ls -l` traces `ls -l`.
	f.SetInterspersed(false)
	f.SortFlags = false
	f.StringVarP(&o.output, "output", "o", "nsntrace.pcapng", "write the capture to `FILE` ('-' = standard output; a .pcap name writes classic pcap); alias --outfile")
	f.StringVarP(&o.format, "format", "F", "", "file format, `pcapng|pcap` (default: pcap for a .pcap name, else pcapng)")
	f.StringVarP(&o.device, "device", "d", "", "uplink `DEV` the program's traffic leaves by (default: the default route's device)")
	f.StringVarP(&o.filter, "filter", "f", "", "capture only packets matching `EXPR` (pcap-filter(7) syntax)")
	f.StringVarP(&o.user, "user", "u", "", "run PROGRAM as `USER` (name or UID), without capabilities")
	f.BoolVar(&o.publicDNS, "use-public-dns", false, "give PROGRAM public resolvers (Quad9, Cloudflare, Google, OpenDNS) instead of the host's")
	f.IntVarP(&o.snapLen, "snaplen", "s", defaultSnapLen, "capture at most `N` bytes of each packet")
	f.IntVarP(&o.bufferKiB, "buffer-size", "B", rawcap.DefaultRingSize>>10, "give each capture ring (the veth's, and lo's) `KIB` kibibytes of kernel memory; a larger ring absorbs longer stalls of the file system")
	f.BoolVarP(&o.packetBuffered, "packet-buffered", "U", false, "write each packet out at once (implied by -o -)")
	f.BoolVar(&o.tlsKeys, "tls-keys", false, "give PROGRAM an SSLKEYLOGFILE and write the TLS keys it logs into the pcapng file, so that Wireshark decrypts its TLS (the file then holds secrets)")
	f.BoolVar(&o.noLoopback, "no-loopback", false, "leave out the program's own loopback interface (lo), captured by default as a second interface of the pcapng file")
	f.BoolVar(&o.noProcesses, "no-processes", false, "do not look up the process behind each connection (its pid, command name and command line, in the summary and as a comment on the connection's first packet)")
	f.BoolVar(&o.loopback, "loopback", false, "with classic pcap (-F pcap, a .pcap name), also capture the program's lo, into the same file with nothing to tell its packets apart")
	f.StringVarP(&o.fileSize, "file-size", "C", "", "start a new file once the current one holds more than `SIZE` millions of bytes (or SIZE k, M, G: 1024, 1024², 1024³ bytes); see Files below")
	f.IntVarP(&o.rotateSeconds, "rotate-seconds", "G", 0, "start a new file every `SECONDS`; see Files below")
	f.IntVarP(&o.fileCount, "file-count", "W", 0, "with -C, keep only the last `N` files (a ring); with -G alone, end after N files")
	f.IntVarP(&o.count, "count", "c", 0, "end the trace after `COUNT` packets, as ctrl-c does")
	f.DurationVar(&o.duration, "duration", 0, "end the trace after `D` (30s, 5m, 1h), as ctrl-c does")
	f.StringVarP(&o.owner, "owner", "Z", "", "the capture and summary files belong to `USER` (name or UID; default: the user who ran sudo)")
	f.StringArrayVarP(&o.publish, "publish", "p", nil, "let connections to the host's port HOSTPORT (on HOSTADDR only, if given) reach PROGRAM's PORT, as `[HOSTADDR:]HOSTPORT:PORT[/tcp|/udp]` (docker's syntax; repeatable); see Publishing below")
	f.StringArrayVar(&o.allow, "allow", nil, "let PROGRAM connect to `RULE`: a name, *.domain, address or prefix, with optional :PORT and /tcp or /udp (repeatable); see Egress policy below")
	f.StringVar(&o.allowFile, "allow-file", "", "read --allow rules from `FILE`, one a line, # comments")
	f.StringVar(&o.policyMode, "policy", "", "what a connection outside the rules does, `audit|enforce`: audit (the default) reports it, enforce also refuses it at once")
	f.StringVar(&o.suggestPolicy, "suggest-policy", "", "write to `FILE` the rules that allow exactly what this run did, for --allow-file")
	f.BoolVar(&o.waitAll, "wait-all", false, "trace until the last process PROGRAM started is gone (daemons that fork and exit), not only PROGRAM itself")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print nothing but errors")
	f.BoolVar(&o.version, "version", false, "print the version and exit")
	f.StringVar(&o.compileFilter, "compile-filter", "", "print the BPF program for `EXPR` in tcpdump -ddd format and exit")
	f.BoolVar(&o.cleanup, "cleanup", false, "remove what crashed runs left behind, and exit")
	f.StringVar(&o.iface, "interface", "", "capture the existing interface `IFACE` (no program) until a stop signal, -c or --duration")
	f.StringVar(&o.summary, "summary", "", "also write the connection summary as JSON to `FILE` (- for standard output)")
	if genDocsFunc != nil {
		// Only in the documentation build (docs.go), for `make install`.
		f.StringVar(&o.genDocs, "gen-docs", "", "write the man page and shell completions under `DIR`")
		mustHide(f, "gen-docs")
	}
	f.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "outfile" { // the C nsntrace's name for -o
			name = "output"
		}
		return pflag.NormalizedName(name)
	})
	addCompletions(cmd)
	return cmd
}

// addCompletions says what the shells complete for each flag's value.
func addCompletions(cmd *cobra.Command) {
	mustComplete(cmd, "format", cobra.FixedCompletions([]string{"pcapng", "pcap"}, cobra.ShellCompDirectiveNoFileComp))
	mustComplete(cmd, "device", completeDevice)
	mustComplete(cmd, "interface", completeDevice)
	mustComplete(cmd, "user", completeUser)
	mustComplete(cmd, "filter", cobra.NoFileCompletions)
	mustComplete(cmd, "compile-filter", cobra.NoFileCompletions)
	mustComplete(cmd, "snaplen", cobra.NoFileCompletions)
	mustComplete(cmd, "owner", completeUser)
	mustComplete(cmd, "policy", cobra.FixedCompletions([]string{"audit", "enforce"}, cobra.ShellCompDirectiveNoFileComp))
	for _, n := range []string{"file-size", "rotate-seconds", "file-count", "count", "duration", "publish", "allow"} {
		mustComplete(cmd, n, cobra.NoFileCompletions)
	}
}

func mustHide(f *pflag.FlagSet, names ...string) {
	for _, n := range names {
		if err := f.MarkHidden(n); err != nil {
			panic(err) // a typo in a flag name above
		}
	}
}

func mustComplete(cmd *cobra.Command, flag string, fn cobra.CompletionFunc) {
	if err := cmd.RegisterFlagCompletionFunc(flag, fn); err != nil {
		panic(err) // a typo in a flag name above
	}
}

// completeProgram completes PROGRAM from $PATH; its arguments complete as
// files, which is what most programs take.
func completeProgram(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 || strings.Contains(toComplete, "/") {
		return nil, cobra.ShellCompDirectiveDefault
	}
	seen := map[string]bool{}
	var out []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // a PATH entry that does not exist is common
		}
		for _, e := range ents {
			n := e.Name()
			if seen[n] || !strings.HasPrefix(n, toComplete) {
				continue
			}
			if fi, err := os.Stat(filepath.Join(dir, n)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

func completeDevice(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, i := range ifs {
		out = append(out, i.Name)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func completeUser(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, _, ok := strings.Cut(sc.Text(), ":"); ok && name != "" && !strings.HasPrefix(name, "#") {
			out = append(out, name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// usageError is a command line nsntrace cannot act on.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// parse parses args (without argv[0]). Help output goes to stdout. It
// returns o.ran == false when nothing is left to do (after -h).
func parse(args []string, stdout, stderr io.Writer) (*options, error) {
	o := &options{}
	cmd := newCommand(o)
	// Never nil: cobra reads os.Args[1:] for nil args unless the binary
	// is named nsntrace.test (the test binary under go test).
	cmd.SetArgs(append([]string{}, args...))
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if _, err := cmd.ExecuteC(); err != nil {
		return nil, &usageError{err.Error()}
	}
	if !o.ran {
		return o, nil
	}
	return o, o.check()
}

// check refuses flag combinations that make no sense, before anything is
// touched.
func (o *options) check() error {
	modes := 0
	for _, m := range []string{"version", "compile-filter", "cleanup", "gen-docs", "interface"} {
		if o.set[m] {
			modes++
		}
	}
	if modes > 1 {
		return &usageError{"--version, --compile-filter, --cleanup and --interface exclude each other"}
	}
	if o.snapLen == 0 {
		o.snapLen = defaultSnapLen // tcpdump's -s 0
	}
	if o.snapLen < 0 || o.snapLen > defaultSnapLen {
		return &usageError{fmt.Sprintf("--snaplen %d: must be between 1 and %d", o.snapLen, defaultSnapLen)}
	}
	if lo := 2 * rawcap.BlockSizeFor(o.snapLen) >> 10; o.bufferKiB < lo || o.bufferKiB > maxBufferKiB {
		return &usageError{fmt.Sprintf("--buffer-size %d: must be between %d (two of the ring's %d KiB blocks at this snap length) and %d KiB", o.bufferKiB, lo, lo/2, maxBufferKiB)}
	}
	if _, err := outputFormat(o.output, o.format); err != nil {
		return &usageError{err.Error()}
	}
	if o.output == "" {
		return &usageError{"--output: empty file name"}
	}
	if o.tlsKeys {
		if f, _ := outputFormat(o.output, o.format); f == pcapng.FormatPcap {
			return &usageError{"--tls-keys needs pcapng: classic pcap has no place for the keys (leave out -F pcap, or name the file .pcapng)"}
		}
		if o.set["interface"] {
			return &usageError{"--tls-keys needs a program to give the key log to, not --interface"}
		}
		if o.fileSize != "" || o.rotateSeconds > 0 {
			return &usageError{"--tls-keys does not work with -C or -G yet: every file would need the keys logged before it; leave one of them out"}
		}
	}
	if err := o.checkLoopback(); err != nil {
		return err
	}
	if o.set["user"] && o.user == "" {
		return &usageError{"--user: empty user name; give a name or UID, or leave -u out to run as root"}
	}
	switch {
	case modes == 1 && len(o.program) > 0:
		return &usageError{fmt.Sprintf("unexpected argument %q: --version, --compile-filter, --cleanup and --interface take no program", o.program[0])}
	case modes == 0 && len(o.program) == 0:
		return &usageError{"no program to trace given"}
	}
	if err := o.checkLimits(); err != nil {
		return err
	}
	if err := o.checkPublish(); err != nil {
		return err
	}
	if err := o.checkPolicy(); err != nil {
		return err
	}
	if o.set["summary"] {
		switch {
		case o.summary == "":
			return &usageError{"--summary: empty file name"}
		case o.summary == "-" && o.output == "-":
			return &usageError{"--summary -: standard output already carries the capture (-o -); give the summary a file name"}
		case modes == 1 && !o.set["interface"]:
			return &usageError{"--summary goes with a traced program or --interface only"}
		case o.summary != "-" && o.output != "-" && sameFile(o.summary, o.output):
			return &usageError{fmt.Sprintf("--summary %s and --output %s are the same file: the summary would replace the capture; give each its own file", o.summary, o.output)}
		}
	}
	return nil
}

// sameFile tells whether two names reach one file: by device and inode
// when both exist (hard links, symbolic links, different paths), else by
// absolute path with symbolic links of the directories resolved.
func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(fa, fb)
	}
	return canonical(a) == canonical(b)
}

// canonical is name made absolute, with symbolic links resolved as far as
// the path exists, for comparing names of files not yet created.
func canonical(name string) string {
	abs, err := filepath.Abs(name)
	if err != nil {
		return filepath.Clean(name)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs))
	}
	return abs
}

// outputFormat chooses the file format: -F wins; otherwise a .pcap name
// (as the C nsntrace's default nsntrace.pcap) gets classic pcap and
// everything else, standard output included, pcapng.
func outputFormat(output, format string) (pcapng.Format, error) {
	if format != "" {
		f, err := pcapng.ParseFormat(format)
		if err != nil {
			return 0, fmt.Errorf("--format %q: must be pcapng or pcap", format)
		}
		return f, nil
	}
	if output != "-" && strings.EqualFold(filepath.Ext(output), ".pcap") {
		return pcapng.FormatPcap, nil
	}
	return pcapng.FormatPcapNG, nil
}

// maxQuoted bounds a command line quoted into the capture file: pcapng
// options hold at most 64 KiB, and a description need not be complete.
const maxQuoted = 4096

// quoteShort is shellQuote cut to maxQuoted bytes.
func quoteShort(argv []string) string {
	q := shellQuote(argv)
	if len(q) > maxQuoted {
		q = strings.ToValidUTF8(q[:maxQuoted], "") + "..."
	}
	return q
}

// shellQuote renders argv as a shell would need it typed, for messages
// and the file's comment.
func shellQuote(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%^", r))
		}) < 0 {
			b.WriteString(a)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}

// checkLimits checks rotation (-C, -G, -W), the stop conditions (-c,
// --duration) and -Z.
func (o *options) checkLimits() error {
	if o.set["file-size"] {
		n, err := parseFileSize(o.fileSize)
		if err != nil {
			return &usageError{fmt.Sprintf("-C %q: %v", o.fileSize, err)}
		}
		o.rot.size = n
	}
	switch {
	case o.set["rotate-seconds"] && (o.rotateSeconds < 1 || o.rotateSeconds > 1<<30):
		return &usageError{fmt.Sprintf("-G %d: must be between 1 and %d seconds", o.rotateSeconds, 1<<30)}
	case o.set["file-count"] && o.fileCount < 1:
		return &usageError{fmt.Sprintf("-W %d: must be at least 1 file", o.fileCount)}
	case o.set["file-count"] && !o.set["file-size"] && !o.set["rotate-seconds"]:
		return &usageError{"-W goes with -C or -G: it bounds the files they make"}
	case (o.set["file-size"] || o.set["rotate-seconds"]) && o.output == "-":
		return &usageError{"-C, -G and -W write several files, not standard output: give -o a file name"}
	case o.set["count"] && o.count < 1:
		return &usageError{fmt.Sprintf("-c %d: must be at least 1 packet", o.count)}
	case o.set["duration"] && o.duration <= 0:
		return &usageError{fmt.Sprintf("--duration %v: must be more than 0 (30s, 5m, 1h)", o.duration)}
	case o.set["owner"] && o.owner == "":
		return &usageError{"-Z: empty user name; give a name or UID"}
	}
	o.rot.every = time.Duration(o.rotateSeconds) * time.Second
	o.rot.files = o.fileCount
	return nil
}
