package pcapng

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// refOp is one step of a random write sequence.
type refOp struct {
	size    int
	comment string
	drops   uint64
	release bool // call Release after the packet, then reuse its memory
}

func refOps(seed uint64, n int) []refOp {
	r := rand.New(rand.NewPCG(seed, 1))
	sizes := []int{0, 1, 63, 64, refMin - 1, refMin, refMin + 1, 1514, 9000, 65535, 200 << 10}
	ops := make([]refOp, n)
	for i := range ops {
		ops[i].size = sizes[r.IntN(len(sizes))]
		if r.IntN(8) == 0 {
			ops[i].comment = fmt.Sprint("c", i)
		}
		if r.IntN(8) == 0 {
			ops[i].drops = uint64(i)
		}
		ops[i].release = r.IntN(4) == 0
	}
	return ops
}

// writeOps writes ops, by reference or by copy, with each packet's data in
// memory that is overwritten once the packet was released (or flushed):
// a reference kept past that point would put the wrong bytes in the file.
func writeOps(t *testing.T, out io.Writer, format Format, buffer int, ops []refOp, ref bool) {
	t.Helper()
	w, err := NewWriter(out, &Config{Format: format, BufferSize: buffer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet}); err != nil {
		t.Fatal(err)
	}
	var live [][]byte // memory the writer may still reference
	for i, op := range ops {
		data := make([]byte, op.size)
		for j := range data {
			data[j] = byte(i*7 + j)
		}
		p := &Packet{Timestamp: int64(i), Data: data, Direction: Direction(i % 3), Comment: op.comment, DropCount: op.drops}
		if format == FormatPcap {
			p.Direction, p.Comment, p.DropCount = 0, "", 0
		}
		if ref {
			err = w.WritePacketRef(p)
		} else {
			err = w.WritePacket(p)
		}
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		live = append(live, data)
		if op.release {
			if err := w.Release(); err != nil {
				t.Fatal(err)
			}
			for _, d := range live {
				for j := range d {
					d[j] = 0xee // the writer must not read this any more
				}
			}
			live = live[:0]
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWritePacketRefSameBytes: a capture written by reference, with
// releases at random points and the memory reused after each, is byte for
// byte the one written by copy: into memory, into a file (one writev per
// batch) and into a pipe.
func TestWritePacketRefSameBytes(t *testing.T) {
	for _, format := range []Format{FormatPcapNG, FormatPcap} {
		for _, buffer := range []int{0, 4096} {
			for seed := uint64(1); seed <= 4; seed++ {
				ops := refOps(seed, 1500)
				t.Run(fmt.Sprintf("%v/buffer %d/seed %d", format, buffer, seed), func(t *testing.T) {
					var want bytes.Buffer
					writeOps(t, &want, format, buffer, ops, false)

					var mem bytes.Buffer
					writeOps(t, &mem, format, buffer, ops, true)
					if !bytes.Equal(mem.Bytes(), want.Bytes()) {
						t.Fatal("by reference into memory: the capture differs from the one written by copy")
					}

					path := filepath.Join(t.TempDir(), "capture")
					f, err := os.Create(path)
					if err != nil {
						t.Fatal(err)
					}
					writeOps(t, f, format, buffer, ops, true)
					f.Close()
					got, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want.Bytes()) {
						t.Fatalf("by reference into a file: %d bytes differ from the %d written by copy", len(got), want.Len())
					}

					pr, pw, err := os.Pipe()
					if err != nil {
						t.Fatal(err)
					}
					read := make(chan []byte)
					go func() {
						b, _ := io.ReadAll(pr)
						read <- b
					}()
					writeOps(t, pw, format, buffer, ops, true)
					pw.Close()
					if got := <-read; !bytes.Equal(got, want.Bytes()) {
						t.Fatalf("by reference into a pipe: %d bytes differ from the %d written by copy", len(got), want.Len())
					}
					pr.Close()
				})
			}
		}
	}
}

// TestWritePacketRefBatches: references are bounded per batch (a vectored
// write stays within IOV_MAX) and counted toward the batch size, and a
// capture is still written in batches of at least the buffer size.
func TestWritePacketRefBatches(t *testing.T) {
	rec := &recordWriter{}
	w, _ := NewWriter(rec, &Config{Format: FormatPcapNG})
	if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1500)
	for i := 0; i < 5000; i++ {
		if err := w.WritePacketRef(&Packet{Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// One batch is at most maxRefs references: pieces of header and tail
	// between them, each data piece 1500 bytes.
	pieces := 0
	for _, n := range rec.sizes {
		if n == 1500 {
			pieces++
		}
	}
	if pieces != 5000 {
		t.Fatalf("%d data pieces written, want 5000 (not copied)", pieces)
	}
	ng := w.(*ngWriter)
	if cap(ng.iov) != 2*maxRefs+1 || cap(ng.refs) != maxRefs {
		t.Errorf("a batch outgrew its %d segments: %d segments, %d references", 2*maxRefs+1, cap(ng.iov), cap(ng.refs))
	}
}

// TestWritePacketRefAllocs: writing by reference does not allocate per
// packet.
func TestWritePacketRefAllocs(t *testing.T) {
	for _, format := range []Format{FormatPcapNG, FormatPcap} {
		w, _ := NewWriter(io.Discard, &Config{Format: format})
		if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet}); err != nil {
			t.Fatal(err)
		}
		p := &Packet{Data: make([]byte, 9000), Timestamp: 1, Direction: DirectionOutbound}
		if n := testing.AllocsPerRun(10000, func() {
			p.Timestamp++
			if err := w.WritePacketRef(p); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%v: %v allocations per packet", format, n)
		}
	}
}
