package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// TestTLSKeys: curl (OpenSSL, which honours SSLKEYLOGFILE) fetches a page
// over TLS 1.3 from a server whose certificate the test made (checked
// with --cacert), with HTTP/1.1 as root and as nobody and with HTTP/2 as
// curl offers it; with --tls-keys the program has the variable, the file
// holds Decryption Secrets Blocks, and tshark, given no key file,
// decrypts the exchange on its first pass (-2 is not used): the page is
// readable only because the keys came before the packets they decrypt.
// Without the flag there is no variable and no secrets block, the
// summary says the flag would help, and nothing is decrypted.
func TestTLSKeys(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	testbed.RequireTool(t, "curl")
	url := fmt.Sprintf("https://%s:%d/keys", testbed.ServerAddr, testbed.HTTPSPort)
	// The program says whether it has the variable, then fetches.
	fetch := func(version string) []string {
		return []string{"sh", "-c", `echo "keylog=${SSLKEYLOGFILE:-none}"; exec curl -sS --cacert "$1" ` + version + ` --tlsv1.3 -o /dev/null "$2"`, "sh", e.in.CACert, url}
	}
	for _, tc := range []struct {
		name, version string
		args          []string
		// filter and fields select the decrypted request and response
		filter string
		fields []string
	}{
		{"root", "--http1.1", nil, "http", []string{"http.request.uri", "http.response.code"}},
		{"nobody", "--http1.1", []string{"-u", "nobody"}, "http", []string{"http.request.uri", "http.response.code"}},
		{"http2", "--http2", nil, "http2.type == 1", []string{"http2.headers.path", "http2.headers.status"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &e2e{t: t, in: e.in, bin: e.bin, dir: t.TempDir()}
			args := append(append([]string{"--tls-keys"}, tc.args...), fetch(tc.version)...)
			r := e.trace("tls.pcapng", args...)
			if r.code != 0 {
				t.Fatalf("exit %d", r.code)
			}
			if strings.Contains(r.stdout, "keylog=none") {
				t.Error("the program has no SSLKEYLOGFILE")
			}
			if !strings.Contains(r.stderr, "warning: "+r.file+" will hold the keys") || strings.Count(r.stderr, "will hold the keys") != 1 {
				t.Error("no single warning that the file holds secrets")
			}
			tsharkOK(t, r.file)
			if n := secretsBlocks(t, r.file); n == 0 {
				t.Error("no Decryption Secrets Block in the file")
			}
			got := fields(t, r.file, tc.filter, tc.fields...)
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
		r := e.trace("plain.pcapng", fetch("--http1.1")...)
		if r.code != 0 || strings.Count(r.stderr, "--tls-keys would put its keys into the file") != 1 {
			t.Errorf("exit %d, no single hint at --tls-keys", r.code)
		}
		if !strings.Contains(r.stdout, "keylog=none") {
			t.Errorf("without --tls-keys the program has SSLKEYLOGFILE: %q", r.stdout)
		}
		if n := secretsBlocks(t, r.file); n != 0 {
			t.Errorf("%d Decryption Secrets Blocks without --tls-keys", n)
		}
		if got := fields(t, r.file, "http", "http.request.uri"); len(got) != 0 {
			t.Errorf("decrypted without keys: %q", got)
		}
		e.clean("")
	})
	t.Run("pcap", func(t *testing.T) {
		e := &e2e{t: t, in: e.in, bin: e.bin, dir: t.TempDir()}
		r := e.trace("k.pcap", append([]string{"--tls-keys"}, fetch("--http1.1")...)...)
		if r.code != exitFailure || !strings.HasPrefix(r.stderr, "nsntrace: --tls-keys needs pcapng") {
			t.Errorf("exit %d: want %d and one sentence", r.code, exitFailure)
		}
		if _, err := os.Stat(r.file); err == nil {
			t.Error("a refused run left its output")
		}
	})
}

// secretsBlocks counts the Decryption Secrets Blocks (type 0x0000000A) of
// a pcapng file, walking its blocks in the byte order of its section
// header.
func secretsBlocks(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 12 {
		t.Fatalf("%s: %d bytes, no section header", file, len(b))
	}
	var order binary.ByteOrder = binary.LittleEndian
	if binary.BigEndian.Uint32(b[8:]) == 0x1a2b3c4d {
		order = binary.BigEndian
	}
	n := 0
	for off := 0; off+8 <= len(b); {
		typ, l := order.Uint32(b[off:]), int(order.Uint32(b[off+4:]))
		if l < 12 || l%4 != 0 || off+l > len(b) {
			t.Fatalf("%s: a block of %d bytes at offset %d", file, l, off)
		}
		if typ == 0x0000000a {
			n++
		}
		off += l
	}
	return n
}
