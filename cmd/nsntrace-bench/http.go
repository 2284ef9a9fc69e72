package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// --- table 6: a published HTTP server under load --------------------------

var (
	reWrkRPS = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reWrk99  = regexp.MustCompile(`\n\s+99%\s+([\d.]+)(us|ms|s)\b`)
)

// nginxConf is a single-process nginx serving a small file on port 80,
// everything it writes kept under dir.
func nginxConf(dir string) (string, error) {
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), bytes.Repeat([]byte("x"), 612), 0o644); err != nil {
		return "", err
	}
	conf := fmt.Sprintf(`daemon off;
user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  keepalive_requests 1000000;
  server { listen 80 reuseport; root %[2]s; }
}
`, dir, www)
	p := filepath.Join(dir, "nginx.conf")
	return p, os.WriteFile(p, []byte(conf), 0o644)
}

// httpRow is one way of serving table 6's load: start starts the server
// (nil: the plain path's, with beside, if not nil, capturing on its veth
// from before it starts), files lists the capture files it wrote.
type httpRow struct {
	name   string
	port   string
	start  func() *exec.Cmd
	files  func() []string
	beside func() *exec.Cmd
}

type httpSample struct {
	rps, p99ms float64
	// cpuPerReq is the machine's busy CPU (user, system, interrupts; not
	// idle, not stolen by the hypervisor) per request, in µs, over all
	// CPUs; busy is the share of the pinned CPU's time that was busy (of
	// all CPUs' when not pinned), steal the share the hypervisor took
	// for others meanwhile.
	cpuPerReq, busy, steal float64
	// toolPerReq is the capture tool's own CPU (nsntrace's or tcpdump's
	// process, all its threads; not the traced server) per request, in µs.
	toolPerReq       float64
	captured, drops  float64
	inFiles, hasCapt bool
	filePackets      float64
}

// plainPort is the host's port of the plain path (no nsntrace).
const plainPort = "8081"

// httpRingKiB is tcpdump's ring in table 6, and that of the nsntrace row
// that compares at the same size.
const httpRingKiB = "8192"

// httpTable loads nginx, published on the host's port by nsntrace -p (or
// by equivalent hand-made veth, DNAT and masquerade with no capture, or
// with tcpdump on that veth), with wrk from the upstream namespace, with
// keep-alive and with a new connection per request.
func httpTable(work string) error {
	pin, err := httpCPU()
	if err != nil {
		return err
	}
	tools := []string{"nginx", "wrk", "tcpdump", "curl"}
	if pin >= 0 {
		tools = append(tools, "taskset")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("table 6 needs %s (apt-get install nginx-light wrk tcpdump curl util-linux)", tool)
		}
	}
	h, err := newNS("hh")
	if err != nil {
		return err
	}
	u, err := newNS("hu")
	if err != nil {
		return err
	}
	p, err := newNS("hplain")
	if err != nil {
		return err
	}
	for _, l := range [][4]string{{string(h), "uplink0", string(u), "down0"}, {string(h), "plainh", string(p), "eth0"}} {
		if out, err := exec.Command("ip", "link", "add", l[1], "netns", l[0], "type", "veth", "peer", "name", l[3], "netns", l[2]).CombinedOutput(); err != nil {
			return fmt.Errorf("create veth %s/%s: %v: %s", l[1], l[3], err, out)
		}
	}
	// wrk without keep-alive opens ~10k connections a second: without
	// these (the upstream namespace's own sysctls), later rows would
	// measure the client's ephemeral ports running out in TIME_WAIT.
	if err := u.sh(`ip addr add 10.77.0.1/24 dev down0; ip link set down0 up
sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1`); err != nil {
		return err
	}
	// The plain path: the same veth, DNAT, forward accept and masquerade
	// as nsntrace -p makes, by hand, and no packet socket at all. Its nft
	// table (plainRules) exists only while a row that uses it runs: its
	// forward chain would otherwise be evaluated for every packet of the
	// nsntrace rows too, beside their own.
	if err := h.sh(`ip addr add 10.77.0.2/24 dev uplink0; ip link set uplink0 up
ip route add default via 10.77.0.1
sysctl -qw net.ipv4.ip_forward=1
ip addr add 10.88.0.1/31 dev plainh; ip link set plainh up`); err != nil {
		return err
	}
	if err := p.sh("ip addr add 10.88.0.0/31 dev eth0; ip link set eth0 up; ip route add default via 10.88.0.1"); err != nil {
		return err
	}
	os.MkdirAll(filepath.Join("/etc/netns", string(h)), 0o755)
	os.WriteFile(filepath.Join("/etc/netns", string(h), "resolv.conf"), []byte("nameserver 10.77.0.1\n"), 0o644)
	conf, err := nginxConf(filepath.Join(work, "nginx"))
	if err != nil {
		return err
	}
	nginx := []string{"nginx", "-c", conf, "-e", "stderr"}
	file := filepath.Join(work, "http.pcapng")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	rows := []httpRow{
		{"untraced (same veth, DNAT, rules; no capture)", plainPort, nil, nil, nil},
		// The floor of any capture: a ring on the plain path's veth whose
		// packets are walked and dropped (floor.go).
		{"ring only, packets dropped (floor)", plainPort, nil, func() []string { return nil }, func() *exec.Cmd {
			return h.cmd(self, "-ring-floor", "plainh")
		}},
		{"nsntrace -p (this)", "8080", func() *exec.Cmd {
			return h.cmd(append([]string{*flagBin, "-p", "8080:80", "-o", file}, nginx...)...)
		}, func() []string { return []string{file} }, nil},
		{"nsntrace -p -C 10 -W 5", "8080", func() *exec.Cmd {
			return h.cmd(append([]string{*flagBin, "-p", "8080:80", "-C", "10", "-W", "5", "-o", file}, nginx...)...)
		}, func() []string { m, _ := filepath.Glob(file + "?"); return m }, nil},
		{"nsntrace -p -C 10 (all files kept)", "8080", func() *exec.Cmd {
			return h.cmd(append([]string{*flagBin, "-p", "8080:80", "-C", "10", "-o", file}, nginx...)...)
		}, func() []string { m, _ := filepath.Glob(file + "*"); return m }, nil},
		{"nsntrace -p -B 8192 (tcpdump's ring)", "8080", func() *exec.Cmd {
			return h.cmd(append([]string{*flagBin, "-p", "8080:80", "-B", httpRingKiB, "-o", file}, nginx...)...)
		}, func() []string { return []string{file} }, nil},
		{"nsntrace -p --no-processes", "8080", func() *exec.Cmd {
			return h.cmd(append([]string{*flagBin, "-p", "8080:80", "--no-processes", "-o", file}, nginx...)...)
		}, func() []string { return []string{file} }, nil},
		{"tcpdump on the veth instead", plainPort, nil, func() []string { return []string{file + ".tcpdump"} }, func() *exec.Cmd {
			return h.cmd("tcpdump", "-q", "-n", "-Z", "root", "-B", httpRingKiB, "-s", "262144", "-i", "plainh", "-w", file+".tcpdump")
		}},
	}
	if *flagHTTP != "" {
		words := strings.Split(*flagHTTP, ",")
		rows = slices.DeleteFunc(rows, func(r httpRow) bool {
			if r.name == rows[0].name {
				return false
			}
			for _, w := range words {
				if w != "" && strings.Contains(r.name, w) {
					return false
				}
			}
			return true
		})
	}
	// The -alt build beside this one, whichever rows were asked for.
	if *flagAlt != "" {
		rows = slices.Insert(rows, min(2, len(rows)), httpRow{"nsntrace-alt -p (-alt)", "8080", func() *exec.Cmd {
			return h.cmd(append([]string{*flagAlt, "-p", "8080:80", "-o", file}, nginx...)...)
		}, func() []string { return []string{file} }, nil})
	}
	modes := []struct {
		name string
		args []string
	}{
		{"keep-alive", nil},
		{"Connection: close", []string{"-H", "Connection: close"}},
	}
	secs := 10
	where := "on any CPU"
	if pin >= 0 {
		where = fmt.Sprintf("all on CPU %d", pin)
	}
	fmt.Printf("\nTable 6. nginx (1 worker) in the traced namespace, published on the host's port (-p), loaded from the upstream namespace by wrk -t2 -c32 for %d s, %s; capture to %s; %d interleaved runs, medians [min..max]\n", secs, where, work, *flagRuns)
	res := map[string][]httpSample{}
	for r := 0; r < *flagRuns; r++ {
		for _, m := range modes {
			for _, row := range rows {
				s, err := httpRun(h, u, p, row, nginx, m.args, secs, pin)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", row.name, m.name, err)
				}
				res[m.name+"|"+row.name] = append(res[m.name+"|"+row.name], s)
			}
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "load\tpath\treq/s\tratio\tCPU µs/req\tratio\tcapture tool µs/req\tbusy\tsteal\tp99 ms\tcaptured\tkernel drops\tpackets in files\t")
	for _, m := range modes {
		base, cbase := 0.0, 0.0
		for i, row := range rows {
			ss := res[m.name+"|"+row.name]
			field := func(f func(httpSample) float64) []float64 {
				var v []float64
				for _, s := range ss {
					v = append(v, f(s))
				}
				return v
			}
			col := func(f func(httpSample) float64, format string) string { return statf(field(f), 1, format) }
			rps := field(func(s httpSample) float64 { return s.rps })
			cpr := field(func(s httpSample) float64 { return s.cpuPerReq })
			if i == 0 {
				base, cbase = median(rps), median(cpr)
			}
			capt, drops, inf, tool := "-", "-", "-", "-"
			if ss[0].hasCapt {
				tool = col(func(s httpSample) float64 { return s.toolPerReq }, "%.1f")
				capt = col(func(s httpSample) float64 { return s.captured }, "%.0f")
				drops = col(func(s httpSample) float64 { return s.drops }, "%.0f")
				if ss[0].inFiles {
					inf = col(func(s httpSample) float64 { return s.filePackets }, "%.0f")
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", m.name, row.name, col(func(s httpSample) float64 { return s.rps }, "%.0f"),
				median(rps)/base, col(func(s httpSample) float64 { return s.cpuPerReq }, "%.1f"), median(cpr)/cbase, tool,
				col(func(s httpSample) float64 { return 100 * s.busy }, "%.0f%%"),
				col(func(s httpSample) float64 { return 100 * s.steal }, "%.0f%%"), col(func(s httpSample) float64 { return s.p99ms }, "%.2f"), capt, drops, inf)
		}
	}
	tw.Flush()
	fmt.Println("(-C 10 -W 5 keeps the last 5 files only: its packets in files are fewer than captured by design; -C 10 keeps all, and there they must equal captured.)")
	return nil
}

// plainRules is the plain path's nft table: DNAT of port 8081 to the
// plain namespace, masquerade out of it, and the forward rules nsntrace -p
// makes for its own veth.
const plainRules = `nft -f - <<'X'
table inet benchpub {
  chain pre { type nat hook prerouting priority dstnat; iifname != "plainh" fib daddr type local tcp dport 8081 dnat ip to 10.88.0.0:80; }
  chain post { type nat hook postrouting priority srcnat; ip saddr 10.88.0.0/31 oifname "uplink0" masquerade; }
  chain fw { type filter hook forward priority filter;
    oifname "plainh" ct state established,related accept
    oifname "plainh" tcp dport 80 ct status dnat accept
    oifname "plainh" drop
    iifname "plainh" oifname "uplink0" accept
    iifname "plainh" drop
  }
}
X`

// httpCPU is the CPU -http-cpu asks table 6 to run on, -1 for none.
func httpCPU() (int, error) {
	pin, n := *flagHTTPCPU, runtime.NumCPU()
	switch {
	case pin == -2:
		if n > 1 {
			return n - 1, nil
		}
		return -1, nil
	case pin < -1 || pin >= n:
		return 0, fmt.Errorf("-http-cpu %d: this machine has CPUs 0 to %d (or -1: none pinned)", pin, n-1)
	}
	return pin, nil
}

// httpRun starts the server of one row, waits until wrk's target answers,
// loads it, stops the server and reads the counters.
func httpRun(h, u, p netns, row httpRow, nginx []string, wrkArgs []string, secs, pin int) (httpSample, error) {
	var s httpSample
	var srv, dump *exec.Cmd
	var out bytes.Buffer
	name, port, files := row.name, row.port, row.files
	if port == plainPort {
		if err := h.sh(plainRules); err != nil {
			return s, err
		}
		defer h.sh("nft delete table inet benchpub")
	}
	switch {
	case row.start != nil:
		srv = row.start()
		srv.Stderr = &out
	case row.beside != nil: // a capture beside the plain path
		dump = pinned(row.beside(), pin)
		dump.Stderr = &out
		if err := dump.Start(); err != nil {
			return s, err
		}
		srv = p.cmd(nginx...)
		time.Sleep(500 * time.Millisecond) // tcpdump's "listening on"
	default:
		srv = p.cmd(nginx...)
	}
	srv = pinned(srv, pin)
	if err := srv.Start(); err != nil {
		return s, err
	}
	stop := func(c *exec.Cmd) {
		c.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			c.Process.Kill()
			<-done
		}
	}
	url := "http://10.77.0.2:" + port + "/"
	if err := u.sh("for i in $(seq 100); do curl -s -o /dev/null --max-time 1 " + url + " && exit 0; sleep 0.1; done; exit 1"); err != nil {
		stop(srv)
		return s, fmt.Errorf("server never answered: %v: %s", err, out.String())
	}
	args := append([]string{"wrk", "-t2", "-c32", "-d" + strconv.Itoa(secs) + "s", "--latency"}, wrkArgs...)
	tool := srv
	if dump != nil {
		tool = dump
	}
	c0, cerr0 := readCPUTimes(pin)
	t0, terr0 := procCPU(tool.Process.Pid)
	wout, werr := pinned(u.cmd(append(args, url)...), pin).CombinedOutput()
	c1, cerr1 := readCPUTimes(pin)
	t1, terr1 := procCPU(tool.Process.Pid)
	stop(srv)
	if dump != nil {
		stop(dump)
	}
	if werr != nil {
		return s, fmt.Errorf("wrk: %v: %s", werr, wout)
	}
	m := reWrkRPS.FindSubmatch(wout)
	l := reWrk99.FindSubmatch(wout)
	if m == nil || l == nil {
		return s, fmt.Errorf("no requests/s or p99 in wrk's output: %s", wout)
	}
	s.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	s.p99ms, _ = strconv.ParseFloat(string(l[1]), 64)
	s.p99ms *= map[string]float64{"us": 1e-3, "ms": 1, "s": 1e3}[string(l[2])]
	if err := errors.Join(cerr0, cerr1, terr0, terr1); err != nil {
		return s, err
	}
	s.cpuPerReq = (c1.busy - c0.busy).Seconds() * 1e6 / (s.rps * float64(secs))
	s.toolPerReq = (t1 - t0).Seconds() * 1e6 / (s.rps * float64(secs))
	s.busy = (c1.pin.busy - c0.pin.busy).Seconds() / (c1.pin.all - c0.pin.all).Seconds()
	s.steal = (c1.pin.steal - c0.pin.steal).Seconds() / (c1.pin.all - c0.pin.all).Seconds()
	if files != nil {
		text := out.String()
		c, ok1 := firstUint(reNsnCap, text)
		d, ok2 := firstUint(reNsnDrop, text)
		if !ok1 || !ok2 {
			return s, fmt.Errorf("no packet counts in %s's output: %s", name, text)
		}
		s.hasCapt, s.captured, s.drops = true, float64(c), float64(d)
		for _, f := range files() {
			s.inFiles = true
			n, err := capinfosCount(f)
			if err != nil {
				return s, err
			}
			s.filePackets += float64(n)
			os.Remove(f)
		}
		if strings.Contains(name, "all files kept") && s.filePackets != s.captured {
			return s, fmt.Errorf("%v packets in the files, %v captured: lost at a rotation", s.filePackets, s.captured)
		}
	}
	return s, nil
}

// procCPU is the CPU time process pid has used, user and system, over
// all its threads (proc(5): utime and stime of /proc/PID/stat).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:])) // from field 3, state
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, b)
	}
	var t time.Duration
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(s, 10, 63)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		t += time.Duration(n) * time.Second / 100 // USER_HZ
	}
	return t, nil
}

// pinned makes c run on CPU cpu alone (taskset(1), which execs c in
// place: c's pid stays the command's), unless cpu is negative.
func pinned(c *exec.Cmd, cpu int) *exec.Cmd {
	if cpu < 0 {
		return c
	}
	p := exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu)}, c.Args...)...)
	p.Stdout, p.Stderr = c.Stdout, c.Stderr
	return p
}

// cpuTimes are the machine's CPU times, over all CPUs, and those of the
// CPU table 6 pins its processes to (all CPUs' when none).
type cpuTimes struct {
	busy, steal, all time.Duration
	pin              struct{ busy, steal, all time.Duration }
}

// readCPUTimes reads /proc/stat's lines for all CPUs and for CPU pin.
func readCPUTimes(pin int) (cpuTimes, error) {
	var t cpuTimes
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return t, err
	}
	lines := strings.Split(string(b), "\n")
	if err := cpuLine(lines[0], "cpu", &t.busy, &t.steal, &t.all); err != nil {
		return t, err
	}
	t.pin.busy, t.pin.steal, t.pin.all = t.busy, t.steal, t.all
	if pin < 0 {
		return t, nil
	}
	name := "cpu" + strconv.Itoa(pin)
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, name+" ") {
			return t, cpuLine(l, name, &t.pin.busy, &t.pin.steal, &t.pin.all)
		}
	}
	return t, fmt.Errorf("/proc/stat: no line for %s", name)
}

// cpuLine parses one CPU line of /proc/stat (proc(5)): user nice system
// idle iowait irq softirq steal, in USER_HZ ticks.
func cpuLine(line, name string, busy, steal, all *time.Duration) error {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != name {
		return fmt.Errorf("/proc/stat: unexpected line %q", line)
	}
	var v [8]time.Duration
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 63)
		if err != nil {
			return fmt.Errorf("/proc/stat: %w", err)
		}
		v[i] = time.Duration(n) * time.Second / 100 // USER_HZ is 100 on Linux
	}
	*busy = v[0] + v[1] + v[2] + v[5] + v[6]
	*steal = v[7]
	*all = *busy + v[3] + v[4] + v[7]
	return nil
}
