// Command nsntrace-bench measures nsntrace next to the tools people would
// pick instead (tcpdump, netsniff-ng, the C nsntrace) and prints the
// comparison tables of `make bench`.
//
// It builds its own network namespaces and veth pairs, sends traffic only
// between them, and removes them when it ends (also on Ctrl-C). It installs
// nothing: it says which Debian packages it needs when one is missing.
//
// Absolute numbers on a shared VM are noise; the ratios measured within one
// run, with the tools interleaved (A B C A B C ...), are what it reports.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

var (
	flagBin     = flag.String("bin", "bin/nsntrace", "nsntrace binary under test")
	flagCBin    = flag.String("c-nsntrace", "/usr/bin/nsntrace", "the C nsntrace (Debian package nsntrace)")
	flagRuns    = flag.Int("runs", 5, "interleaved runs per tool and case")
	flagSeconds = flag.Float64("seconds", 2, "traffic duration of one engine run")
	flagTables  = flag.String("tables", "engine,rate,iperf,startup,summary,http", "tables to print (http: table 6, a published nginx under wrk)")
	flagRing    = flag.Int("ring-mib", 64, "ring size in MiB, the same for every capture tool")
	flagSizes   = flag.String("sizes", "64,1514", "frame sizes of table 1")
	flagSinks   = flag.String("sinks", "/dev/null,tmpfs,ext4", "sinks of table 1 (ext4: a file system on a loop device, in a private mount namespace)")
	flagTools   = flag.String("tools", "nsntrace,tcpdump,netsniff-ng", "capture tools of tables 1 and 2")
	flagAlt     = flag.String("alt", "", "a second nsntrace binary to compare in tables 1-4 and 6 (nsntrace-alt), for A/B tests of a change")
	flagFloor   = flag.String("ring-floor", "", "internal to table 6: read a ring on this interface, drop every packet, print the counts on SIGINT")
	flagHTTPCPU = flag.Int("http-cpu", -2, "table 6 runs nginx, wrk and the capture tool all on this one CPU (taskset), so that the CPU is always busy and requests/s measure what each row costs; -1: not pinned; default: the last CPU, when there are two or more")
	flagHTTP    = flag.String("http-rows", "", "comma-separated words: table 6 runs only the rows whose name holds one of them (the first row, untraced, always runs: the ratios are to it); empty: every row")
)

// required maps each external program to the Debian package that has it.
var required = map[string]string{
	"ip":          "iproute2",
	"nft":         "nftables",
	"mkfs.ext4":   "e2fsprogs",
	"nsenter":     "util-linux",
	"unshare":     "util-linux",
	"taskset":     "util-linux",
	"trafgen":     "netsniff-ng",
	"netsniff-ng": "netsniff-ng",
	"tcpdump":     "tcpdump",
	"capinfos":    "tshark",
	"iperf3":      "iperf3",
}

func main() {
	flag.Parse()
	if *flagFloor != "" {
		if err := ringFloor(*flagFloor); err != nil {
			fmt.Fprintln(os.Stderr, "nsntrace-bench -ring-floor:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "nsntrace-bench:", err)
		cleanup()
		os.Exit(1)
	}
	cleanup()
}

func run() error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root: it creates network namespaces (sudo make bench)")
	}
	if _, err := httpCPU(); err != nil {
		return err
	}
	var missing []string
	for prog, pkg := range required {
		if _, err := exec.LookPath(prog); err != nil {
			missing = append(missing, pkg)
		}
	}
	if _, err := os.Stat(*flagCBin); err != nil {
		missing = append(missing, "nsntrace")
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("missing tools; install them with: apt-get install -y %s", strings.Join(dedup(missing), " "))
	}
	bin, err := filepath.Abs(*flagBin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s not found: run make build first", bin)
	}
	*flagBin = bin
	if *flagAlt != "" {
		if *flagAlt, err = filepath.Abs(*flagAlt); err != nil {
			return err
		}
		if _, err := os.Stat(*flagAlt); err != nil {
			return fmt.Errorf("-alt: %w", err)
		}
	}

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigc
		fmt.Fprintln(os.Stderr, "\ninterrupted: removing namespaces")
		cleanup()
		os.Exit(130)
	}()

	work := fmt.Sprintf("/dev/shm/nsnb-%d", os.Getpid())
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	atCleanup(func() { os.RemoveAll(work) })

	fmt.Printf("nsntrace-bench: %s vs tcpdump, netsniff-ng and the C nsntrace\n", bin)
	fmt.Printf("machine: %d CPUs, kernel %s; generator pinned to CPU 0, capture to CPU 1; ring %d MiB for every tool\n",
		numCPU(), kernel(), *flagRing)
	warm(work)

	tables := map[string]bool{}
	for _, t := range strings.Split(*flagTables, ",") {
		tables[strings.TrimSpace(t)] = true
	}
	if tables["engine"] || tables["rate"] {
		if err := engineTables(work, tables); err != nil {
			return err
		}
	}
	if tables["iperf"] {
		if err := iperfTable(work); err != nil {
			return err
		}
	}
	if tables["startup"] {
		if tables["iperf"] {
			// Table 3 wrote and freed gigabytes of tmpfs, which this VM
			// hands back to its host: memory is cold again.
			warm(work)
		}
		if err := startupTable(work); err != nil {
			return err
		}
	}
	if tables["http"] {
		if err := httpTable(work); err != nil {
			return err
		}
	}
	if tables["summary"] {
		if tables["iperf"] {
			warm(work)
		}
		if err := summaryTable(work); err != nil {
			return err
		}
	}
	return nil
}

// warm touches memory through tmpfs once: this VM's free-page reporting
// makes first-time tmpfs writes several times slower than later ones.
func warm(work string) {
	fmt.Println("warming memory: writing and removing 4 GiB in tmpfs first (cold pages make tmpfs writes several times slower on this VM)")
	f := filepath.Join(work, "warm")
	cmd := exec.Command("dd", "if=/dev/zero", "of="+f, "bs=1M", "count=4096")
	cmd.Run() // best effort: a failure only makes the first runs slower
	os.Remove(f)
}

// --- namespaces ----------------------------------------------------------

var cleanups []func()

func atCleanup(f func()) { cleanups = append(cleanups, f) }

func cleanup() {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

type netns string

func newNS(tag string) (netns, error) {
	n := netns(fmt.Sprintf("nsnb-%d-%s", os.Getpid(), tag))
	if out, err := exec.Command("ip", "netns", "add", string(n)).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %v: %s", n, err, out)
	}
	atCleanup(func() {
		if out, err := exec.Command("ip", "netns", "pids", string(n)).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		exec.Command("ip", "netns", "del", string(n)).Run()
		os.RemoveAll(filepath.Join("/etc/netns", string(n)))
	})
	return n, n.sh("ip link set lo up")
}

func (n netns) cmd(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", string(n)}, args...)...)
}

func (n netns) sh(script string) error {
	out, err := n.cmd("sh", "-ec", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("in %s: %s: %v: %s", n, script, err, out)
	}
	return nil
}

func (n netns) counter(dev, name string) (uint64, error) {
	out, err := n.cmd("cat", "/sys/class/net/"+dev+"/statistics/"+name).Output()
	if err != nil {
		return 0, fmt.Errorf("read %s counter %s: %w", dev, name, err)
	}
	return strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
}

// --- table 1 and 2: the capture engine ----------------------------------

type tool struct {
	name string
	// args returns the capture command for interface dev writing to out.
	args func(dev, out string) []string
}

func tools() []tool {
	ring := *flagRing
	all := []tool{
		{"nsntrace", func(dev, out string) []string {
			return []string{*flagBin, "--interface", dev, "-B", strconv.Itoa(ring << 10), "-o", out}
		}},
		{"nsntrace-alt", func(dev, out string) []string {
			// No -B: the other build may predate it; its default ring is 64 MiB.
			return []string{*flagAlt, "--interface", dev, "-o", out}
		}},
		{"tcpdump", func(dev, out string) []string {
			// -Z root: Debian's tcpdump drops to user tcpdump and gives
			// it the output file, /dev/null included.
			return []string{"tcpdump", "-i", dev, "-n", "-Z", "root", "-B", strconv.Itoa(ring << 10), "-w", out}
		}},
		{"netsniff-ng", func(dev, out string) []string {
			return []string{"netsniff-ng", "--in", dev, "--out", out, "--silent", "--no-sock-mem",
				"--ring-size", fmt.Sprintf("%dMiB", ring), "--bind-cpu", "1"}
		}},
	}
	want := map[string]bool{}
	for _, n := range strings.Split(*flagTools, ",") {
		want[strings.TrimSpace(n)] = true
	}
	want["nsntrace"] = true // the base of every ratio
	want["nsntrace-alt"] = *flagAlt != ""
	var ts []tool
	for _, t := range all {
		if want[t.name] {
			ts = append(ts, t)
		}
	}
	return ts
}

type sample struct {
	sent, captured, drops uint64
	cpu                   time.Duration
	// startCPU is what the tool used before the first packet came;
	// steadyCPU what it used over the steady-state window, in which the
	// veth received steadyPkts packets.
	startCPU, steadyCPU time.Duration
	steadyPkts          uint64
}

func (s sample) startMs() float64 { return float64(s.startCPU.Microseconds()) / 1000 }

func (s sample) steadyNsPerPkt() float64 {
	if s.steadyPkts == 0 {
		return 0
	}
	return float64(s.steadyCPU.Nanoseconds()) / float64(s.steadyPkts)
}

func (s sample) ratio() float64 {
	if s.sent == 0 {
		return 0
	}
	return float64(s.captured) / float64(s.sent)
}

func (s sample) nsPerPkt() float64 {
	if s.captured == 0 {
		return 0
	}
	return float64(s.cpu.Nanoseconds()) / float64(s.captured)
}

func trafgenConf(work string, size int) (string, error) {
	// Ethernet to a fake destination MAC (the receiver drops it early),
	// IPv4/UDP to the discard port, padded to size bytes.
	var b strings.Builder
	b.WriteString("{ 0x02,0x00,0x5e,0x00,0x00,0x99, 0x02,0x00,0x5e,0x00,0x00,0x01, c16(0x0800), ")
	ipLen := size - 14
	fmt.Fprintf(&b, "0x45,0x00,c16(%d),0,0,0x40,0,64,17,csumip(14,33), 10,99,0,1, 10,99,0,2, ", ipLen)
	fmt.Fprintf(&b, "c16(4000),c16(9),c16(%d),c16(0), fill(0x41,%d) }\n", ipLen-20, ipLen-28)
	p := filepath.Join(work, fmt.Sprintf("frame%d.cfg", size))
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}

var (
	reTcpdumpCap  = regexp.MustCompile(`(\d+) packets? captured`)
	reTcpdumpDrop = regexp.MustCompile(`(\d+) packets? dropped by kernel`)
	reNsnCap      = regexp.MustCompile(`(\d+)\s+packets? (?:captured|passed filter)`)
	reNsnDrop     = regexp.MustCompile(`(\d+)\s+packets? (?:dropped by kernel|failed filter)`)
)

func firstUint(re *regexp.Regexp, s string) (uint64, bool) {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseUint(m[1], 10, 64)
	return v, err == nil
}

func capinfosCount(file string) (uint64, error) {
	out, err := exec.Command("capinfos", "-c", "-M", file).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("capinfos %s: %v: %s", file, err, out)
	}
	m := regexp.MustCompile(`Number of packets:\s+(\d+)`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("capinfos %s: no packet count in %q", file, out)
	}
	return strconv.ParseUint(string(m[1]), 10, 64)
}

// engineRun runs one capture tool on cap0 while trafgen floods gen0, and
// measures its CPU three ways: whole run, the fixed cost of starting (the
// CPU it used before any packet came: ring allocation, runtime, file
// set-up) and the steady state (CPU per packet the veth received over a
// window that starts after the flood has run for a while and ends before
// it stops). s.mounts, if set, runs the tool in that mount namespace.
func engineRun(gen, capns netns, t tool, conf, sink string, rate string, m *mountNS) (sample, error) {
	var s sample
	out := sink
	remove := func() { os.Remove(sink) }
	count := func() (uint64, error) { return capinfosCount(sink) }
	if m != nil {
		remove = func() { m.run("rm", "-f", sink) }
		count = func() (uint64, error) { return m.capinfosCount(sink) }
	}
	if sink != "/dev/null" {
		remove()
	}
	args := append([]string{"taskset", "-c", "1"}, t.args("cap0", out)...)
	cmd := capns.cmd(args...)
	if m != nil {
		cmd = m.cmd(capns.cmd(args...).Args...)
	}
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return s, err
	}
	fail := func(err error) (sample, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return s, err
	}
	time.Sleep(700 * time.Millisecond) // let the tool open its ring
	var err error
	if s.startCPU, err = threadsCPU(cmd.Process.Pid); err != nil {
		return fail(err)
	}
	rx0, err := capns.counter("cap0", "rx_packets")
	if err != nil {
		return fail(err)
	}
	targs := []string{"timeout", "-s", "INT", fmt.Sprintf("%.3f", *flagSeconds),
		"taskset", "-c", "0", "trafgen", "--dev", "gen0", "--conf", conf, "--cpus", "1",
		"--no-sock-mem", "--notouch-irq", "--no-cpu-stats"}
	if rate != "" {
		targs = append(targs, "--rate", rate)
	}
	gcmd := gen.cmd(targs...)
	var gout strings.Builder
	gcmd.Stdout, gcmd.Stderr = &gout, &gout
	if err := gcmd.Start(); err != nil {
		return fail(err)
	}
	// The steady-state window: from a quarter into the flood to 0.2 s
	// before its end, away from trafgen's start-up and from the tool's
	// own ring being filled for the first time.
	win := time.Duration((*flagSeconds*0.75 - 0.2) * float64(time.Second))
	time.Sleep(time.Duration(*flagSeconds * 0.25 * float64(time.Second)))
	c0, e0 := threadsCPU(cmd.Process.Pid)
	w0, e1 := capns.counter("cap0", "rx_packets")
	time.Sleep(win)
	c1, e2 := threadsCPU(cmd.Process.Pid)
	w1, e3 := capns.counter("cap0", "rx_packets")
	if err := errors.Join(e0, e1, e2, e3); err != nil {
		gcmd.Wait()
		return fail(err)
	}
	s.steadyCPU, s.steadyPkts = c1-c0, w1-w0
	if err := gcmd.Wait(); err != nil && gcmd.ProcessState.ExitCode() != 124 && !strings.Contains(gout.String(), "outgoing") {
		return fail(fmt.Errorf("trafgen: %v: %s", err, gout.String()))
	}
	time.Sleep(300 * time.Millisecond) // frames in flight reach the receiver
	rx1, err := capns.counter("cap0", "rx_packets")
	if err != nil {
		return fail(err)
	}
	s.sent = rx1 - rx0
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		return s, fmt.Errorf("%s did not stop within 20 s of SIGINT: %s", t.name, buf.String())
	}
	ps := cmd.ProcessState
	s.cpu = ps.UserTime() + ps.SystemTime()
	text := buf.String()
	switch t.name {
	case "tcpdump":
		s.drops, _ = firstUint(reTcpdumpDrop, text)
		s.captured, _ = firstUint(reTcpdumpCap, text)
	default:
		s.drops, _ = firstUint(reNsnDrop, text)
		s.captured, _ = firstUint(reNsnCap, text)
	}
	if sink != "/dev/null" {
		n, err := count()
		if err != nil {
			return s, fmt.Errorf("%s: %w (tool said: %s)", t.name, err, strings.TrimSpace(text))
		}
		s.captured = n
		remove()
	}
	return s, nil
}

// coldWait is how long a cold start waits after the last run: longer
// than free page reporting's delay (2 s, page_reporting.c), so that the
// memory the last ring freed has gone back to the host.
const coldWait = 4 * time.Second

// threadsCPU is the CPU time the threads of process pid have run, from
// the scheduler's own nanosecond accounting (/proc/PID/task/*/schedstat;
// the tick-based utime and stime are too coarse for a start-up).
func threadsCPU(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("read threads: %w", err)
	}
	var sum time.Duration
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue // the thread is gone
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s/schedstat: %w", e.Name(), err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// mountNS is a private mount namespace, held by a sleeping process, with
// an ext4 file system on a loop device mounted in it: the block-device
// sink of table 1. Nothing of it is seen outside, and it goes with the
// process (the loop device is detached when its last mount goes).
type mountNS struct {
	holder *exec.Cmd
	dir    string // the mount point
}

func newExt4Sink(work string) (*mountNS, error) {
	img, err := os.CreateTemp("/var/tmp", "nsnb-ext4-*.img")
	if err != nil {
		return nil, fmt.Errorf("ext4 sink: %w", err)
	}
	imgPath := img.Name()
	atCleanup(func() { os.Remove(imgPath) })
	if err := img.Truncate(2 << 30); err != nil {
		img.Close()
		return nil, fmt.Errorf("ext4 sink: %w", err)
	}
	img.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", imgPath).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mkfs.ext4: %v: %s", err, out)
	}
	m := &mountNS{holder: exec.Command("unshare", "-m", "--propagation", "private", "sleep", "infinity"),
		dir: filepath.Join(work, "ext4")}
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, err
	}
	if err := m.holder.Start(); err != nil {
		return nil, fmt.Errorf("unshare: %w", err)
	}
	atCleanup(func() { m.holder.Process.Kill(); m.holder.Wait() })
	// unshare has made its namespace once it execs sleep.
	for i := 0; i < 100; i++ {
		self, _ := os.Readlink("/proc/self/ns/mnt")
		other, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", m.holder.Process.Pid))
		if other != "" && other != self {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := m.run("mount", "-o", "loop", imgPath, m.dir); err != nil {
		return nil, err
	}
	return m, nil
}

// cmd runs args in the mount namespace.
func (m *mountNS) cmd(args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"-t", strconv.Itoa(m.holder.Process.Pid), "-m", "--"}, args...)...)
}

func (m *mountNS) run(args ...string) error {
	if out, err := m.cmd(args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (m *mountNS) capinfosCount(file string) (uint64, error) {
	out, err := m.cmd("capinfos", "-c", "-M", file).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("capinfos %s: %v: %s", file, err, out)
	}
	mm := regexp.MustCompile(`Number of packets:\s+(\d+)`).FindSubmatch(out)
	if mm == nil {
		return 0, fmt.Errorf("capinfos %s: no packet count in %q", file, out)
	}
	return strconv.ParseUint(string(mm[1]), 10, 64)
}

// warmMemory writes and removes n bytes in tmpfs: the pages the next ring
// gets were just in use (warm). Waiting instead lets this VM's free page
// reporting hand free memory back to the host, and the next ring's
// zeroing then touches pages the host must supply again (cold).
func warmMemory(work string, n int) {
	p := filepath.Join(work, "warm")
	f, err := os.Create(p)
	if err != nil {
		return
	}
	buf := make([]byte, 1<<20)
	for i := 0; i < n>>20; i++ {
		f.Write(buf)
	}
	f.Close()
	os.Remove(p)
}

// floodPair makes two namespaces joined by a veth, gen0 in the first
// (trafgen's) and cap0 in the second (the capture tool's), both up.
func floodPair(tag string) (gen, capns netns, err error) {
	if gen, err = newNS(tag + "gen"); err != nil {
		return "", "", err
	}
	if capns, err = newNS(tag + "cap"); err != nil {
		return "", "", err
	}
	if out, err := exec.Command("ip", "link", "add", "gen0", "netns", string(gen), "type", "veth",
		"peer", "name", "cap0", "netns", string(capns)).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("create veth: %v: %s", err, out)
	}
	if err := gen.sh("ip link set gen0 up"); err != nil {
		return "", "", err
	}
	return gen, capns, capns.sh("ip link set cap0 up")
}

func engineTables(work string, tables map[string]bool) error {
	gen, capns, err := floodPair("")
	if err != nil {
		return err
	}
	ts := tools()
	if tables["engine"] {
		fmt.Printf("\nTable 1. Capture engine at trafgen's maximum rate, %d interleaved runs of %.1f s each; medians [min..max]\n",
			*flagRuns, *flagSeconds)
		for _, sz := range strings.Split(*flagSizes, ",") {
			size, err := strconv.Atoi(strings.TrimSpace(sz))
			if err != nil || size < 60 || size > 1514 {
				return fmt.Errorf("-sizes: %q is not a frame size from 60 to 1514", sz)
			}
			conf, err := trafgenConf(work, size)
			if err != nil {
				return err
			}
			for _, sink := range strings.Split(*flagSinks, ",") {
				var m *mountNS
				dir := work
				switch sink {
				case "/dev/null", "tmpfs":
				case "ext4":
					if m, err = newExt4Sink(work); err != nil {
						return err
					}
					dir = m.dir
				default:
					return fmt.Errorf("-sinks: %q is none of /dev/null, tmpfs, ext4", sink)
				}
				for _, state := range []string{"warm", "cold"} {
					res := map[string][]sample{}
					for r := 0; r < *flagRuns; r++ {
						for _, t := range ts {
							path := sink
							if sink != "/dev/null" {
								path = filepath.Join(dir, "cap-"+t.name+".pcap")
							}
							if state == "warm" {
								warmMemory(work, 256<<20)
							} else {
								time.Sleep(coldWait)
							}
							s, err := engineRun(gen, capns, t, conf, path, "", m)
							if err != nil {
								return err
							}
							res[t.name] = append(res[t.name], s)
						}
					}
					printEngine(fmt.Sprintf("%d-byte frames -> %s, %s start", size, sink, state), ts, res)
				}
			}
		}
	}
	if tables["rate"] {
		conf, err := trafgenConf(work, 1514)
		if err != nil {
			return err
		}
		fmt.Printf("\nTable 2. 1514-byte frames rate-limited to ~300k pps -> tmpfs file, %d interleaved runs; medians [min..max]\n", *flagRuns)
		res := map[string][]sample{}
		for r := 0; r < *flagRuns; r++ {
			for _, t := range ts {
				s, err := engineRun(gen, capns, t, conf, filepath.Join(work, "rate-"+t.name+".pcap"), "300000pps", nil)
				if err != nil {
					return err
				}
				res[t.name] = append(res[t.name], s)
			}
		}
		tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "tool\tsent\tcaptured\tkernel drops\tsent-captured\t")
		for _, t := range ts {
			ss := res[t.name]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", t.name,
				stat(ss, func(s sample) float64 { return float64(s.sent) }, "%.0f"),
				stat(ss, func(s sample) float64 { return float64(s.captured) }, "%.0f"),
				stat(ss, func(s sample) float64 { return float64(s.drops) }, "%.0f"),
				stat(ss, func(s sample) float64 { return float64(s.sent) - float64(s.captured) }, "%.0f"))
		}
		tw.Flush()
	}
	return nil
}

func printEngine(title string, ts []tool, res map[string][]sample) {
	fmt.Printf("\n  %s\n", title)
	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tool\tsent\tcaptured\tkernel drops\tcaptured/sent\tstart-up CPU ms\tsteady ns/pkt\tsteady vs nsntrace\twhole-run ns/pkt\twhole vs nsntrace\t")
	base := median(vals(res["nsntrace"], sample.nsPerPkt))
	steady := median(vals(res["nsntrace"], sample.steadyNsPerPkt))
	for _, t := range ts {
		ss := res[t.name]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2fx\t%s\t%.2fx\t\n", t.name,
			stat(ss, func(s sample) float64 { return float64(s.sent) }, "%.0f"),
			stat(ss, func(s sample) float64 { return float64(s.captured) }, "%.0f"),
			stat(ss, func(s sample) float64 { return float64(s.drops) }, "%.0f"),
			stat(ss, sample.ratio, "%.3f"),
			stat(ss, sample.startMs, "%.1f"),
			stat(ss, sample.steadyNsPerPkt, "%.1f"), median(vals(ss, sample.steadyNsPerPkt))/steady,
			stat(ss, sample.nsPerPkt, "%.1f"), median(vals(ss, sample.nsPerPkt))/base)
	}
	tw.Flush()
}

// --- table 3: overhead on the traced program ----------------------------

func iperfTable(work string) error {
	h, err := newNS("h")
	if err != nil {
		return err
	}
	u, err := newNS("u")
	if err != nil {
		return err
	}
	p, err := newNS("plain")
	if err != nil {
		return err
	}
	link := func(a netns, an string, b netns, bn string) error {
		out, err := exec.Command("ip", "link", "add", an, "netns", string(a), "type", "veth",
			"peer", "name", bn, "netns", string(b)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("create veth %s/%s: %v: %s", an, bn, err, out)
		}
		return nil
	}
	if err := link(h, "uplink0", u, "down0"); err != nil {
		return err
	}
	if err := link(h, "plainh", p, "eth0"); err != nil {
		return err
	}
	if err := u.sh("ip addr add 10.77.0.1/24 dev down0; ip link set down0 up"); err != nil {
		return err
	}
	if err := h.sh(`ip addr add 10.77.0.2/24 dev uplink0; ip link set uplink0 up
ip route add default via 10.77.0.1
sysctl -qw net.ipv4.ip_forward=1
ip addr add 10.88.0.1/24 dev plainh; ip link set plainh up
nft add table ip benchnat
nft 'add chain ip benchnat post { type nat hook postrouting priority srcnat; }'
nft add rule ip benchnat post ip saddr 10.88.0.0/24 oifname uplink0 masquerade`); err != nil {
		return err
	}
	if err := p.sh("ip addr add 10.88.0.2/24 dev eth0; ip link set eth0 up; ip route add default via 10.88.0.1"); err != nil {
		return err
	}
	// The C nsntrace's resolver handling wants a resolv.conf; give H one
	// that points into the private internet only.
	os.MkdirAll(filepath.Join("/etc/netns", string(h)), 0o755)
	os.WriteFile(filepath.Join("/etc/netns", string(h), "resolv.conf"), []byte("nameserver 10.77.0.1\n"), 0o644)

	srv := u.cmd("iperf3", "-s", "-B", "10.77.0.1")
	if err := srv.Start(); err != nil {
		return err
	}
	atCleanup(func() { srv.Process.Kill(); srv.Wait() })
	time.Sleep(500 * time.Millisecond)

	secs := "3"
	client := []string{"iperf3", "-c", "10.77.0.1", "-t", secs, "-J"}
	pcapOurs := filepath.Join(work, "iperf-ours.pcapng")
	pcapC := filepath.Join(work, "iperf-c.pcap")
	paths := []struct {
		name string
		cmd  func() *exec.Cmd
	}{
		{"plain veth+NAT (no capture)", func() *exec.Cmd { return p.cmd(client...) }},
		{"nsntrace (this)", func() *exec.Cmd {
			return h.cmd(append([]string{*flagBin, "-o", pcapOurs}, client...)...)
		}},
		{"nsntrace (this) -s 8192", func() *exec.Cmd {
			return h.cmd(append([]string{*flagBin, "-s", "8192", "-o", pcapOurs}, client...)...)
		}},
		{"nsntrace (C, Debian)", func() *exec.Cmd {
			return h.cmd(append([]string{*flagCBin, "-d", "uplink0", "--outfile", pcapC}, client...)...)
		}},
	}
	if *flagAlt != "" {
		paths = append(paths, struct {
			name string
			cmd  func() *exec.Cmd
		}{"nsntrace-alt", func() *exec.Cmd {
			return h.cmd(append([]string{*flagAlt, "-o", pcapOurs}, client...)...)
		}})
	}
	fmt.Printf("\nTable 3. iperf3 TCP throughput of a traced client to an upstream server (%s s each, %d interleaved runs; capture to tmpfs; the C nsntrace keeps 8192 bytes of each packet, ours 262144 unless -s); medians [min..max]\n", secs, *flagRuns)
	res := map[string][]float64{}
	captured := map[string][]float64{}
	drops := map[string][]float64{}
	for r := 0; r < *flagRuns; r++ {
		for i, pth := range paths {
			out, err := pth.cmd().CombinedOutput()
			bps, perr := iperfBPS(out)
			if perr != nil {
				return fmt.Errorf("%s: %v (%v): %s", pth.name, perr, err, tail(out))
			}
			res[pth.name] = append(res[pth.name], bps)
			if i > 0 {
				// What the trace holds: a capture that keeps up is worth
				// more than one that keeps the program fast by dropping.
				file := pcapOurs
				if strings.Contains(pth.name, "(C") {
					file = pcapC
				}
				n, err := capinfosCount(file)
				if err != nil {
					return fmt.Errorf("%s: %w", pth.name, err)
				}
				captured[pth.name] = append(captured[pth.name], float64(n))
				if d, ok := firstUint(reNsnDrop, string(out)); ok {
					drops[pth.name] = append(drops[pth.name], float64(d))
				}
			}
			os.Remove(pcapOurs)
			os.Remove(pcapC)
		}
	}
	plain := median(res[paths[0].name])
	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tGbit/s\tratio to plain\tpackets in file\tkernel drops\t")
	for _, pth := range paths {
		v := res[pth.name]
		c, d := "-", "-"
		if len(captured[pth.name]) > 0 {
			c = statf(captured[pth.name], 1, "%.0f")
		}
		if len(drops[pth.name]) > 0 {
			d = statf(drops[pth.name], 1, "%.0f")
		} else if len(captured[pth.name]) > 0 {
			d = "not reported"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s\t%s\t\n", pth.name, statf(v, 1e-9, "%.2f"), median(v)/plain, c, d)
	}
	tw.Flush()
	return nil
}

func iperfBPS(out []byte) (float64, error) {
	s := string(out)
	i, j := strings.Index(s, "{"), strings.LastIndex(s, "}")
	if i < 0 || j < i {
		return 0, errors.New("no iperf3 JSON in output")
	}
	var doc struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(s[i:j+1]), &doc); err != nil {
		return 0, fmt.Errorf("parse iperf3 JSON: %w", err)
	}
	if doc.Error != "" {
		return 0, errors.New("iperf3: " + doc.Error)
	}
	if doc.End.SumReceived.BitsPerSecond == 0 {
		return 0, errors.New("iperf3 reported no throughput")
	}
	return doc.End.SumReceived.BitsPerSecond, nil
}

// --- table 4: start-up and shutdown -------------------------------------

func startupTable(work string) error {
	h, err := newNS("h2")
	if err != nil {
		return err
	}
	u, err := newNS("u2")
	if err != nil {
		return err
	}
	if out, err := exec.Command("ip", "link", "add", "uplink0", "netns", string(h), "type", "veth",
		"peer", "name", "down0", "netns", string(u)).CombinedOutput(); err != nil {
		return fmt.Errorf("create veth: %v: %s", err, out)
	}
	if err := u.sh("ip addr add 10.77.0.1/24 dev down0; ip link set down0 up"); err != nil {
		return err
	}
	if err := h.sh("ip addr add 10.77.0.2/24 dev uplink0; ip link set uplink0 up; ip route add default via 10.77.0.1; sysctl -qw net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	os.MkdirAll(filepath.Join("/etc/netns", string(h)), 0o755)
	os.WriteFile(filepath.Join("/etc/netns", string(h), "resolv.conf"), []byte("nameserver 10.77.0.1\n"), 0o644)
	f := filepath.Join(work, "startup.pcap")
	const n = 10
	runs := []struct {
		name string
		cmd  func() *exec.Cmd
	}{
		{"nsntrace (this)", func() *exec.Cmd { return h.cmd(*flagBin, "-q", "-o", f, "true") }},
		{"nsntrace (C, Debian)", func() *exec.Cmd { return h.cmd(*flagCBin, "-d", "uplink0", "--outfile", f, "true") }},
	}
	if *flagAlt != "" {
		runs = append(runs, struct {
			name string
			cmd  func() *exec.Cmd
		}{"nsntrace-alt", func() *exec.Cmd { return h.cmd(*flagAlt, "-q", "-o", f, "true") }})
	}
	res := map[string][]float64{}
	races := 0
	for i := 0; i < n; i++ {
		for _, r := range runs {
			var (
				d   time.Duration
				out []byte
				err error
			)
			for try := 0; try < 5; try++ {
				start := time.Now()
				out, err = r.cmd().CombinedOutput()
				d = time.Since(start)
				// The C nsntrace races its own child for its veth and
				// sometimes fails to start ("Couldn't open iface"): retry,
				// and count it.
				if err == nil || !strings.Contains(string(out), "Couldn't open iface") {
					break
				}
				races++
			}
			if err != nil {
				return fmt.Errorf("%s true: %v: %s", r.name, err, tail(out))
			}
			res[r.name] = append(res[r.name], float64(d.Microseconds())/1000)
			os.Remove(f)
		}
	}
	fmt.Printf("\nTable 4. Start-up and shutdown: wall time of `nsntrace -o F true` (including `ip netns exec`), %d interleaved runs; medians [min..max]\n", n)
	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tool\tms\t")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t\n", r.name, statf(res[r.name], 1, "%.1f"))
	}
	tw.Flush()
	if races > 0 {
		fmt.Printf("(the C nsntrace failed to start %d times with its own veth race and was run again)\n", races)
	}
	return nil
}

// --- helpers -------------------------------------------------------------

func vals(ss []sample, f func(sample) float64) []float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	return v
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func stat(ss []sample, f func(sample) float64, format string) string {
	return statf(vals(ss, f), 1, format)
}

func statf(v []float64, scale float64, format string) string {
	if len(v) == 0 {
		return "-"
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return fmt.Sprintf(format+" ["+format+".."+format+"]", median(v)*scale, s[0]*scale, s[len(s)-1]*scale)
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

func dedup(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func numCPU() int {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "processor") {
			n++
		}
	}
	return n
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
