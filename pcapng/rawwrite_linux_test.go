package pcapng

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// TestRawClassify: writes bypass the scheduler only into /dev/null and
// regular files on tmpfs or ramfs; a pipe, a file on a file system that
// stat(1) calls neither, and a writer that is no file are written as
// usual.
func TestRawClassify(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	// The package's own directory: a disk where CI runs.
	disk, err := os.CreateTemp(".", "raw-classify-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(disk.Name())
	defer disk.Close()
	out, stderr, err := testbed.Output(t, func() *exec.Cmd { return exec.Command("stat", "-f", "-c", "%T", disk.Name()) })
	if err != nil {
		t.Fatalf("stat -f: %v: %s", err, stderr)
	}
	fsType := strings.TrimSpace(string(out))
	for _, c := range []struct {
		name string
		w    io.Writer
		want bool
	}{
		{"/dev/null", null, true},
		{"a pipe", pw, false},
		{"a file on " + fsType, disk, fsType == "tmpfs" || fsType == "ramfs"},
		{"a bytes.Buffer", &bytes.Buffer{}, false},
	} {
		var v vecState
		v.classify(c.w)
		if v.raw != c.want {
			t.Errorf("%s: raw %v, want %v", c.name, v.raw, c.want)
		}
	}
}

// TestRawWrites: a capture written into a file on a tmpfs (raw writes,
// plain and vectored) is byte for byte the one written into a
// bytes.Buffer, and /dev/null takes it whole.
func TestRawWrites(t *testing.T) {
	testbed.RequirePrivileged(t)
	for _, ref := range []bool{false, true} {
		t.Run(fmt.Sprintf("ref=%v", ref), func(t *testing.T) {
			var want bytes.Buffer
			if err := writeSample(&want, ref); err != nil {
				t.Fatal(err)
			}
			type result struct {
				file []byte
				raw  bool
				err  error
			}
			dir := t.TempDir()
			res := make(chan result, 1)
			go func() {
				runtime.LockOSThread() // never unlocked: see mountTmpfs
				var r result
				defer func() { res <- r }()
				if r.err = mountTmpfs(dir, "size=16m,mode=0700"); r.err != nil {
					return
				}
				path := filepath.Join(dir, "capture")
				f, err := os.Create(path)
				if err != nil {
					r.err = err
					return
				}
				var v vecState
				v.classify(f)
				r.raw = v.raw
				if r.err = writeSample(f, ref); r.err == nil {
					r.err = f.Close()
				}
				if r.err == nil {
					r.file, r.err = os.ReadFile(path)
				}
			}()
			r := <-res
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !r.raw {
				t.Fatal("a file on tmpfs is not written raw")
			}
			if !bytes.Equal(r.file, want.Bytes()) {
				t.Fatalf("tmpfs file: %d bytes, differs from the %d written into memory", len(r.file), want.Len())
			}
			null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer null.Close()
			if err := writeSample(null, ref); err != nil {
				t.Fatalf("/dev/null: %v", err)
			}
		})
	}
}

// writeSample writes a capture of several batches of packets, small,
// middling and large, into w, by reference when ref is set, and closes
// the writer.
func writeSample(w io.Writer, ref bool) error {
	pw, err := NewWriter(w, &Config{Format: FormatPcapNG, BufferSize: 64 << 10})
	if err != nil {
		return err
	}
	if _, err := pw.AddInterface(Interface{LinkType: LinkTypeEthernet, Name: "raw0"}); err != nil {
		return err
	}
	write := pw.WritePacket
	if ref {
		write = pw.WritePacketRef
	}
	for i := 0; i < 2000; i++ {
		data := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, []int{30, 700, 3000}[i%3])
		p := Packet{Timestamp: int64(i) * 1000, Data: data, Direction: DirectionInbound}
		if err := write(&p); err != nil {
			return err
		}
	}
	if err := pw.WriteStats(0, Stats{Received: 2000, HasReceived: true}); err != nil {
		return err
	}
	return pw.Close()
}
