//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/nsntrace/nsntrace/internal/summary"
	"github.com/nsntrace/nsntrace/internal/testbed"
)

// TestSummary: a program resolves two names, fetches over HTTP from both,
// sends a UDP datagram, connects to a closed port and looks up a name that
// does not exist. The JSON summary must list exactly that, with byte
// counts equal to what tshark counts in the same file.
func TestSummary(t *testing.T) {
	t.Parallel()
	testbed.RequireTool(t, "curl")
	testbed.RequireTool(t, "bash")
	e := newE2E(t, nil)
	file := filepath.Join(e.dir, "s.pcapng")
	js := filepath.Join(e.dir, "s.json")
	script := fmt.Sprintf(`curl -4 -sS http://www.example.test:%[1]d/a >/dev/null
curl -4 -sS http://api.example.test:%[1]d/b >/dev/null
echo hello >/dev/udp/%[2]s/%[3]d
curl -4 -sS http://%[2]s:%[4]d/ 2>/dev/null
getent ahostsv4 nx.example.test
exit 0`, testbed.HTTPPort, testbed.UpstreamAddr, testbed.EchoPort, testbed.ClosedPort)
	out, err := e.cmd("-o", file, "--summary", js, "bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("trace: %v\n%s", err, out)
	}
	for _, want := range []string{"Outbound connections:", "api.example.test, www.example.test (198.51.100.80)", "(1 refused)", "DNS lookups that failed:", "nx.example.test"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("summary on stderr lacks %q:\n%s", want, out)
		}
	}
	r := readSummary(t, js)
	if r.ExitStatus != 0 || len(r.Command) != 3 || r.Command[0] != "bash" || r.Packets == 0 {
		t.Errorf("header = %+v", r)
	}
	var got []string
	byPort := map[string]summary.Connection{}
	for _, c := range r.Connections {
		k := fmt.Sprintf("%s %s %s:%d %s %s", c.Direction, c.Proto, c.RemoteAddr, c.RemotePort, strings.Join(c.Names, ","), c.State)
		got = append(got, k)
		byPort[c.Proto+strconv.Itoa(int(c.LocalPort))] = c
	}
	sort.Strings(got)
	// DNS: one UDP conversation per lookup socket; count them separately.
	var dns, rest []string
	for _, g := range got {
		if strings.Contains(g, ":53 ") {
			dns = append(dns, g)
		} else {
			rest = append(rest, g)
		}
	}
	srv, up := testbed.ServerAddr.String(), testbed.UpstreamAddr.String()
	want := []string{
		fmt.Sprintf("outbound tcp %s:%d api.example.test,www.example.test established", srv, testbed.HTTPPort),
		fmt.Sprintf("outbound tcp %s:%d api.example.test,www.example.test established", srv, testbed.HTTPPort),
		fmt.Sprintf("outbound tcp %s:%d  refused", up, testbed.ClosedPort),
		fmt.Sprintf("outbound udp %s:%d  no answer", up, testbed.EchoPort),
	}
	// The echo server answers: "answered", not "no answer".
	want[3] = fmt.Sprintf("outbound udp %s:%d  answered", up, testbed.EchoPort)
	sort.Strings(want)
	if strings.Join(rest, "\n") != strings.Join(want, "\n") {
		t.Errorf("connections:\n%s\nwant:\n%s", strings.Join(rest, "\n"), strings.Join(want, "\n"))
	}
	if len(dns) == 0 {
		t.Errorf("no DNS conversation listed")
	}
	for _, d := range dns {
		if !strings.HasPrefix(d, "outbound udp "+up+":53") || !strings.HasSuffix(d, "answered") {
			t.Errorf("DNS conversation %q", d)
		}
	}
	foundNX := false
	for _, f := range r.DNSFailures {
		if f.Name == "nx.example.test" && f.RCode == "NXDOMAIN" {
			foundNX = true
		}
	}
	if !foundNX {
		t.Errorf("dns_failures = %+v, want nx.example.test NXDOMAIN", r.DNSFailures)
	}

	// Independent oracle: tshark's frame lengths per TCP/UDP conversation.
	rows := fields(t, file, "(tcp || udp) && !icmp && !icmpv6", "ip.src", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "frame.len")
	type sums struct{ pout, pin, bout, bin uint64 }
	tsh := map[string]*sums{}
	for _, row := range rows {
		for len(row) < 6 {
			row = append(row, "")
		}
		proto, sp, dp := "tcp", row[1], row[2]
		if sp == "" {
			proto, sp, dp = "udp", row[3], row[4]
		}
		n, _ := strconv.ParseUint(row[5], 10, 64)
		outbound := row[0] != up && row[0] != srv
		local := sp
		if !outbound {
			local = dp
		}
		k := proto + local
		if tsh[k] == nil {
			tsh[k] = &sums{}
		}
		if outbound {
			tsh[k].pout++
			tsh[k].bout += n
		} else {
			tsh[k].pin++
			tsh[k].bin += n
		}
	}
	for k, s := range tsh {
		c, ok := byPort[k]
		if !ok {
			t.Errorf("tshark sees conversation %s that the summary lacks", k)
			continue
		}
		if c.PacketsOut != s.pout || c.PacketsIn != s.pin || c.BytesOut != s.bout || c.BytesIn != s.bin {
			t.Errorf("%s: summary %d/%d pkts %d/%d bytes, tshark %d/%d pkts %d/%d bytes",
				k, c.PacketsOut, c.PacketsIn, c.BytesOut, c.BytesIn, s.pout, s.pin, s.bout, s.bin)
		}
	}
	// The learned names are in the file's name resolution block.
	nrb, err := execOutput("tshark", "-r", file, "-q", "-z", "hosts")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(nrb, "198.51.100.80\tapi.example.test") && !strings.Contains(nrb, "198.51.100.80\twww.example.test") {
		t.Errorf("tshark -z hosts lacks the learned names:\n%s", nrb)
	}
	e.clean("")
}

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}

// TestSummaryInterface: --summary with --interface (the engine alone, as
// `make bench` runs it) lists what crossed the interface, "outbound" being
// what the interface sent, with counts equal to the packets in the file.
func TestSummaryInterface(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	file := filepath.Join(e.dir, "iface.pcapng")
	js := filepath.Join(e.dir, "iface.json")
	se := captureInterfaceUDP(t, e, file, 200, "--summary", js)
	if !strings.Contains(se.String(), "Outbound connections:") {
		t.Errorf("no summary table on stderr")
	}
	r := readSummary(t, js)
	var out, in uint64
	for _, c := range r.Connections {
		if c.Proto != "udp" || c.RemoteAddr != testbed.UpstreamAddr.String() || c.RemotePort != 7 || c.Direction != "outbound" {
			t.Errorf("unexpected connection %+v", c)
		}
		out += c.PacketsOut
		in += c.PacketsIn
	}
	if n := count(t, file, "udp.dstport == 7"); out != uint64(n) || out == 0 {
		t.Errorf("summary counts %d datagrams sent, tshark %d", out, n)
	}
	if n := count(t, file, "udp.srcport == 7"); in != uint64(n) {
		t.Errorf("summary counts %d datagrams received, tshark %d", in, n)
	}
	if r.Packets != out+in {
		t.Errorf("packets %d, connections hold %d", r.Packets, out+in)
	}
}

// readSummary reads a --summary JSON file.
func readSummary(t *testing.T, path string) *summary.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r summary.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	return &r
}
