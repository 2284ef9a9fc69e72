package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePolicyFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, ".egress-allow")
	if err := os.WriteFile(file, []byte("# CI\n*.example.test:8080/tcp\n10.77.0.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := mustParse(t, "--allow", "www.example.test", "--allow", "[fd77::1]:7/udp", "--allow-file", file, "--policy", "enforce", "--suggest-policy", filepath.Join(dir, "s"), "curl")
	var got []string
	for _, r := range o.rules {
		got = append(got, r.String())
	}
	if want := "www.example.test [fd77::1]:7/udp *.example.test:8080/tcp 10.77.0.0/24"; strings.Join(got, " ") != want || !o.enforce || !o.policyOn() {
		t.Errorf("rules %q (enforce %v), want %q enforced", got, o.enforce, want)
	}
	if o := mustParse(t, "--allow", "x.test", "curl"); o.enforce || !o.policyOn() {
		t.Error("rules without --policy are not audited")
	}
	if o := mustParse(t, "--suggest-policy", filepath.Join(dir, "s"), "curl"); o.policyOn() {
		t.Error("--suggest-policy alone made a policy")
	}
}

// TestParsePolicyErrors: bad rules and combinations are refused in one
// sentence by parse, before anything is created.
func TestParsePolicyErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("ok.test\n# fine\nhost:99999\n"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("# nothing\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--allow", "*.", "curl"}, `--allow "*.": wildcard "*.": give a domain after the *.`},
		{[]string{"--allow", "host:99999", "curl"}, `--allow "host:99999": port "99999": must be a number from 1 to 65535`},
		{[]string{"--allow", "10.0.0.0/33", "curl"}, `--allow "10.0.0.0/33": 10.0.0.0/33 is not an address prefix`},
		{[]string{"--allow-file", bad, "curl"}, "--allow-file " + bad + `:3: rule "host:99999": port "99999"`},
		{[]string{"--allow-file", filepath.Join(dir, "none"), "curl"}, "no such file"},
		{[]string{"--allow-file", empty, "curl"}, "holds no rules"},
		{[]string{"--policy", "enforce", "curl"}, "--policy enforce needs rules"},
		{[]string{"--policy", "block", "--allow", "x.test", "curl"}, `--policy "block": must be audit or enforce`},
		{[]string{"--allow", "x.test", "--interface", "eth0"}, "not --interface"},
		{[]string{"--suggest-policy", "", "curl"}, "--suggest-policy: empty file name"},
		{[]string{"--suggest-policy", "x.pcapng", "-o", "x.pcapng", "curl"}, "are the same file"},
	} {
		var out, errb bytes.Buffer
		_, err := parse(tc.args, &out, &errb)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parse(%q) = %v, want a usage error with %q", tc.args, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("parse(%q): %q is more than one line", tc.args, err)
		}
	}
}

// TestBadRuleNothingStarts: the binary refuses a bad rule with exit
// status 125 and one sentence on stderr (and the usual pointer to
// --help), before it checks privileges or
// creates anything.
func TestBadRuleNothingStarts(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"--allow", "10.0.0.0/33", "--policy", "enforce", "-o", filepath.Join(t.TempDir(), "x.pcapng"), "true"}, &out, &errb)
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if code != exitFailure || len(lines) != 2 || !strings.Contains(lines[0], "10.0.0.0/33 is not an address prefix") || !strings.Contains(lines[1], "--help") {
		t.Errorf("exit %d, stderr %q; want %d and one line", code, errb.String(), exitFailure)
	}
}
