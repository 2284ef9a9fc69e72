package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// TestTLSKeys: curl (OpenSSL, which honours SSLKEYLOGFILE) fetches a page
// over TLS 1.3, as root and as nobody; with --tls-keys tshark, given no
// key file, decrypts the exchange on its first pass (-2 is not used); the
// page is readable only because the keys came before the packets they
// decrypt. Without the flag the summary says the flag would help, and
// nothing is decrypted.
func TestTLSKeys(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	testbed.RequireTool(t, "curl")
	url := fmt.Sprintf("https://%s:%d/keys", testbed.ServerAddr, testbed.HTTPSPort)
	curl := []string{"curl", "-sk", "--http1.1", "--tlsv1.3", "-o", "/dev/null", url}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"root", nil},
		{"nobody", []string{"-u", "nobody"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &e2e{t: t, in: e.in, bin: e.bin, dir: t.TempDir()}
			args := append(append([]string{"--tls-keys"}, tc.args...), curl...)
			r := e.trace("tls.pcapng", args...)
			if r.code != 0 {
				t.Fatalf("exit %d", r.code)
			}
			if !strings.Contains(r.stderr, "warning: "+r.file+" will hold the keys") || strings.Count(r.stderr, "will hold the keys") != 1 {
				t.Error("no single warning that the file holds secrets")
			}
			tsharkOK(t, r.file)
			got := fields(t, r.file, "http", "http.request.uri", "http.response.code")
			if len(got) != 2 || got[0][0] != "/keys" || got[1][1] != "200" {
				t.Errorf("tshark decrypts %q, want the GET of /keys and its 200", got)
			}
			if strings.Contains(r.stderr, "--tls-keys would") {
				t.Error("the summary suggests --tls-keys, which was given")
			}
			e.clean("")
		})
	}
	t.Run("without", func(t *testing.T) {
		e := &e2e{t: t, in: e.in, bin: e.bin, dir: t.TempDir()}
		r := e.trace("plain.pcapng", curl...)
		if r.code != 0 || strings.Count(r.stderr, "--tls-keys would put its keys into the file") != 1 {
			t.Errorf("exit %d, no single hint at --tls-keys", r.code)
		}
		if got := fields(t, r.file, "http", "http.request.uri"); len(got) != 0 {
			t.Errorf("decrypted without keys: %q", got)
		}
		e.clean("")
	})
	t.Run("pcap", func(t *testing.T) {
		e := &e2e{t: t, in: e.in, bin: e.bin, dir: t.TempDir()}
		r := e.trace("k.pcap", append([]string{"--tls-keys"}, curl...)...)
		if r.code != exitFailure || !strings.HasPrefix(r.stderr, "nsntrace: --tls-keys needs pcapng") {
			t.Errorf("exit %d: want %d and one sentence", r.code, exitFailure)
		}
		if _, err := os.Stat(r.file); err == nil {
			t.Error("a refused run left its output")
		}
	})
}
