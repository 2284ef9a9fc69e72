//go:build gendocs

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Run by make test with -tags gendocs.
func TestGenDocs(t *testing.T) {
	dir := t.TempDir()
	if err := genDocs(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"man/nsntrace.1", "nsntrace.bash", "_nsntrace", "nsntrace.fish"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("nsntrace")) {
			t.Errorf("%s does not mention nsntrace", f)
		}
	}
	man, _ := os.ReadFile(filepath.Join(dir, "man/nsntrace.1"))
	for _, want := range []string{"--use-public-dns", "PROGRAM", "Exit status", "--file-size", "--owner", "--duration", "Files: with -C", "--publish", "Publishing:", "--allow-file", "--suggest-policy", "Egress policy:", "124 when PROGRAM exited 0"} {
		if !bytes.Contains(man, []byte(want)) {
			t.Errorf("man page lacks %q", want)
		}
	}
	if bytes.Contains(man, []byte("gen\\-docs")) {
		t.Error("man page shows the hidden --gen-docs")
	}
}
