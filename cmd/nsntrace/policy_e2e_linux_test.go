//go:build linux

package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/nsntrace/nsntrace/internal/summary"
	"github.com/nsntrace/nsntrace/internal/testbed"
)

// egressScript is the program of the egress tests: a shell script that
// tries an allowed name, an unlisted address over TCP (timed), a name no
// rule allows, and an unlisted UDP echo, and prints how each went. It
// exits 0 whatever happened, so that nsntrace's status says whether
// there were violations.
func egressScript() []string {
	udp := strings.Join(helper("udp", netip.AddrPortFrom(testbed.UpstreamAddr, testbed.EchoPort).String(), "hi"), " ")
	return []string{"sh", "-c", `
curl -sS -o /dev/null -w 'allowed %{http_code}\n' --max-time 10 http://www.example.test:8080/
s=$(date +%s%N); curl -sS -o /dev/null --connect-timeout 5 http://10.77.0.1:8080/; rc=$?
echo "direct rc=$rc ms=$(( ($(date +%s%N) - s) / 1000000 ))"
curl -sS -o /dev/null --max-time 10 http://evil.test:8080/; echo "evil rc=$?"
` + udp + `; echo "udp rc=$?"
exit 0`}
}

// scriptResult finds "KEY rc=N" in the script's output.
func scriptResult(t *testing.T, out, key string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + key + ` rc=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q result in the program's output:\n%s", key, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// violationSet renders the violations as sorted lines, without counts.
func violationSet(vs []summary.Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, fmt.Sprintf("%s %s %s %d/%s", v.Kind, v.Name, v.Addr, v.Port, v.Proto))
	}
	sort.Strings(out)
	return out
}

// egressInternet is the private internet with a name outside
// *.example.test, on the upstream's address.
func egressInternet(t *testing.T) *e2e {
	return newE2E(t, &testbed.InternetConfig{Zone: map[string]netip.Addr{"evil.test": testbed.UpstreamAddr}})
}

// TestEgressEnforceAndAudit: with --policy enforce, the allowed name
// works, a direct connection to an unlisted address is reset at once (the
// program fails well before curl's 5 s connect timeout), a name no rule
// allows is refused at the relay (it never reaches the upstream's DNS),
// UDP to an unlisted address gets an ICMP error, nsntrace exits 124 for a
// program that exited 0, and the violations are in the text report, the
// JSON summary and as comments on the first packet of each violating
// connection. --policy audit blocks none of it and reports the same
// violations, not blocked.
func TestEgressEnforceAndAudit(t *testing.T) {
	t.Parallel()
	e := egressInternet(t)
	testbed.RequireTool(t, "curl")
	rules := []string{"--allow", "www.example.test:8080/tcp"}
	var sets [2][]string
	for i, mode := range []string{"enforce", "audit"} {
		js := filepath.Join(e.dir, mode+".json")
		before := len(e.in.Seen())
		r := e.trace(mode+".pcapng", append(append(rules, "--policy", mode, "--summary", js), egressScript()...)...)
		if r.code != exitViolation {
			t.Errorf("%s: exit %d, want %d (a program that exited 0, with violations)", mode, r.code, exitViolation)
		}
		if !strings.Contains(r.stdout, "allowed 200") {
			t.Errorf("%s: the allowed name did not work:\n%s", mode, r.stdout)
		}
		direct, evil, udp := scriptResult(t, r.stdout, "direct"), scriptResult(t, r.stdout, "evil"), scriptResult(t, r.stdout, "udp")
		ms, _ := strconv.Atoi(regexp.MustCompile(`ms=(\d+)`).FindStringSubmatch(r.stdout)[1])
		t.Logf("%s: curl --connect-timeout 5 to an unlisted address: exit %d after %d ms", mode, direct, ms)
		evilAsked := false
		for _, s := range e.in.Seen()[before:] {
			evilAsked = evilAsked || strings.HasPrefix(s.Detail, "evil.test")
		}
		blocked := mode == "enforce"
		if blocked {
			if direct != 7 || ms >= 5000 {
				t.Errorf("unlisted address: curl exit %d after %d ms, want 7 (refused) before its 5 s timeout", direct, ms)
			}
			if evil != 6 || evilAsked {
				t.Errorf("unlisted name: curl exit %d (want 6, not resolved), upstream DNS saw it: %v", evil, evilAsked)
			}
			if udp == 0 || !strings.Contains(r.stderr, "no route to host") {
				t.Errorf("unlisted UDP: helper exit %d, want an ICMP unreachable error (no route to host)", udp)
			}
		} else if direct != 0 || evil != 0 || udp != 0 || !evilAsked {
			t.Errorf("audit blocked something: direct %d, evil %d (asked upstream: %v), udp %d", direct, evil, evilAsked, udp)
		}
		for _, w := range []string{"Egress policy violations:", "lookup of evil.test", "10.77.0.1"} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: report lacks %q", mode, w)
			}
		}
		rep := readSummary(t, js)
		for _, v := range rep.Violations {
			if v.Blocked != blocked || v.Count == 0 {
				t.Errorf("%s: violation %+v: blocked %v, want %v", mode, v, v.Blocked, blocked)
			}
		}
		sets[i] = violationSet(rep.Violations)
		// Each violating connection's first packet, and only it, has the
		// comment: curl's SYN (its retries are the same connection) and
		// the first UDP datagram; in audit also evil.test's SYN.
		tsharkOK(t, r.file)
		what := map[bool]string{true: "blocked", false: "audit, not blocked"}[blocked]
		udpName := map[bool]string{true: "", false: " (evil.test)"}[blocked]
		for _, c := range []struct{ filter, comment string }{
			{"tcp.flags.syn == 1 && tcp.flags.ack == 0 && ip.dst == 10.77.0.1", "nsntrace: egress violation (" + what + "): 10.77.0.1:8080/tcp not allowed"},
			{"udp.dstport == 7", "nsntrace: egress violation (" + what + "): 10.77.0.1:7/udp" + udpName + " not allowed"},
		} {
			rows := fields(t, r.file, fmt.Sprintf("frame.comment contains %q && %s", c.comment, c.filter), "frame.number") // after the process, if known
			if len(rows) != 1 {
				t.Errorf("%s: %d packets of %s with comment %q, want 1", mode, len(rows), c.filter, c.comment)
			}
		}
		wantN := map[bool]int{true: 2, false: 3}[blocked]
		if n := count(t, r.file, `frame.comment contains "egress violation"`); n != wantN {
			t.Errorf("%s: %d commented packets, want %d (one per violating connection)", mode, n, wantN)
		}
	}
	want := []string{"connection  10.77.0.1 7/udp", "connection  10.77.0.1 8080/tcp", "lookup evil.test  53/udp"}
	if strings.Join(sets[0], "\n") != strings.Join(want, "\n") {
		t.Errorf("enforce violations:\n%s\nwant:\n%s", strings.Join(sets[0], "\n"), strings.Join(want, "\n"))
	}
	// Audit lets evil.test resolve and connect: its connection is a
	// violation too, by name, and the UDP echo after it goes to an
	// address that name gave. The rest is the same.
	wantAudit := []string{"connection  10.77.0.1 8080/tcp", "connection evil.test 10.77.0.1 7/udp", "connection evil.test 10.77.0.1 8080/tcp", "lookup evil.test  53/udp"}
	if strings.Join(sets[1], "\n") != strings.Join(wantAudit, "\n") {
		t.Errorf("audit violations:\n%s\nwant:\n%s", strings.Join(sets[1], "\n"), strings.Join(wantAudit, "\n"))
	}
	e.clean("")
}

// TestEgressNames: names through the relay. A wildcard allows the names
// below it, also over IPv6 (AAAA) and DNS over TCP; a prefix rule with a
// port allows only that port and protocol; a name rule allows the
// addresses at the end of its CNAME chain, but not a lookup of the
// chain's target by itself. The program's own non-zero status wins over
// the violations' 124.
func TestEgressNames(t *testing.T) {
	t.Parallel()
	e := egressInternet(t)
	testbed.RequireTool(t, "curl")
	udp := strings.Join(helper("udp", netip.AddrPortFrom(testbed.UpstreamAddr, testbed.EchoPort).String(), "hi"), " ")
	r := e.trace("wild.pcapng", "--policy", "enforce", "--allow", "*.example.test:8080/tcp", "--allow", "10.77.0.0/24:7/udp",
		"--summary", filepath.Join(e.dir, "wild.json"), "sh", "-c", `
RES_OPTIONS=use-vc curl -6 -sS -o /dev/null --max-time 10 http://v6.example.test:8080/; echo "v6tcp rc=$?"
curl -4 -sS -o /dev/null --max-time 10 http://echo.example.test:8080/; echo "echo rc=$?"
curl -sS -o /dev/null --connect-timeout 5 http://10.77.0.1:7/; echo "tcp7 rc=$?"
curl -sS -o /dev/null --max-time 10 http://example.test:8080/; echo "apex rc=$?"
`+udp+`; echo "udp rc=$?"
exit 3`)
	if r.code != 3 {
		t.Errorf("exit %d, want the program's own 3", r.code)
	}
	for key, want := range map[string]int{"v6tcp": 0, "echo": 0, "tcp7": 7, "apex": 6, "udp": 0} {
		if got := scriptResult(t, r.stdout, key); got != want {
			t.Errorf("%s: exit %d, want %d", key, got, want)
		}
	}
	if n := count(t, r.file, "tcp.dstport == 53 && dns.qry.name == \"v6.example.test\""); n == 0 {
		t.Error("no DNS over TCP in the trace: RES_OPTIONS=use-vc did not take")
	}
	if n := count(t, r.file, "ipv6.dst == fd77:80::80 && tcp.flags.syn == 1 && tcp.flags.ack == 0 && !(frame.comment contains \"egress violation\")"); n == 0 {
		t.Error("no IPv6 connection to v6.example.test without a violation comment")
	}
	got := violationSet(readSummary(t, filepath.Join(e.dir, "wild.json")).Violations)
	want := []string{"connection echo.example.test 10.77.0.1 7/tcp", "lookup example.test  53/udp"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	r = e.trace("cname.pcapng", "--policy", "enforce", "--allow", "alias.example.test:8080/tcp", "sh", "-c", `
curl -4 -sS -o /dev/null --max-time 10 http://alias.example.test:8080/; echo "alias rc=$?"
curl -4 -sS -o /dev/null --max-time 10 http://www.example.test:8080/; echo "target rc=$?"`)
	if a, w := scriptResult(t, r.stdout, "alias"), scriptResult(t, r.stdout, "target"); a != 0 || w != 6 || r.code != exitViolation {
		t.Errorf("CNAME: alias exit %d (want 0), its target asked alone %d (want 6, refused), nsntrace %d (want %d)", a, w, r.code, exitViolation)
	}
	e.clean("")
}

// TestSuggestPolicy: --suggest-policy writes rules from a run without
// rules; fed back with --allow-file and --policy enforce, the same
// program runs clean: exit 0, no violations.
func TestSuggestPolicy(t *testing.T) {
	t.Parallel()
	e := egressInternet(t)
	testbed.RequireTool(t, "curl")
	udp := strings.Join(helper("udp", netip.AddrPortFrom(testbed.UpstreamAddr, testbed.EchoPort).String(), "hi"), " ")
	prog := []string{"sh", "-c", `set -e
curl -4 -sS -o /dev/null --max-time 10 http://www.example.test:8080/
curl -6 -sS -o /dev/null --max-time 10 http://v6.example.test:8080/
curl -sS -o /dev/null --max-time 10 http://10.77.0.1:8080/
` + udp}
	allow := filepath.Join(e.dir, ".egress-allow")
	r := e.trace("learn.pcapng", append([]string{"--suggest-policy", allow}, prog...)...)
	if r.code != 0 {
		t.Fatalf("learning run: exit %d", r.code)
	}
	b, err := os.ReadFile(allow)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("suggested:\n%s", b)
	for _, w := range []string{"\nwww.example.test:8080/tcp\n", "\nv6.example.test:8080/tcp\n", "\n10.77.0.1:8080/tcp\n", "\n10.77.0.1:7/udp\n"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("suggested rules lack %q", strings.TrimSpace(w))
		}
	}
	js := filepath.Join(e.dir, "again.json")
	r = e.trace("again.pcapng", append([]string{"--allow-file", allow, "--policy", "enforce", "--summary", js}, prog...)...)
	if vs := readSummary(t, js).Violations; r.code != 0 || vs == nil || len(vs) != 0 {
		t.Errorf("second run with the suggested rules: exit %d, violations %+v; want 0 and none", r.code, vs)
	}
	e.clean("")
}
