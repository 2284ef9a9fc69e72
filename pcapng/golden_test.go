package pcapng

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden compares the sample capture, in both formats, with the files
// in testdata/golden, which `go test ./pcapng -run TestGolden -update`
// wrote (see testdata/README.md). A change of the bytes the writer
// produces shows up here, and the golden files are what the oracle test
// hands to tshark and capinfos.
func TestGolden(t *testing.T) {
	s := newSample(t)
	for name, file := range map[string][]byte{
		"sample.pcapng": s.write(t),
		"sample.pcap":   s.pcapOnly().write(t),
	} {
		path := filepath.Join("testdata", "golden", name)
		if *update {
			if err := os.WriteFile(path, file, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./pcapng -run TestGolden -update)", err)
		}
		if !bytes.Equal(file, want) {
			t.Errorf("%s: the writer's output differs from the golden file; if intended, run go test ./pcapng -run TestGolden -update", name)
		}
	}
}
