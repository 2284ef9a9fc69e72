package pcapng

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
)

// roomFile is a regular file that takes only room more bytes, then fails
// like a full disk (a short write, then ENOSPC).
type roomFile struct {
	*os.File
	room int
}

func (f *roomFile) Write(p []byte) (int, error) {
	if len(p) <= f.room {
		f.room -= len(p)
		return f.File.Write(p)
	}
	n, err := f.File.Write(p[:f.room])
	f.room = 0
	if err == nil {
		err = &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return n, err
}

// TestCutToCompleteBlocks: when a write fails part way, the file is cut
// back to the last block that reached it whole, wherever the failure hits
// (in the file header, between blocks, in the middle of a packet larger
// than the buffer), and bytes that were in the file before the capture
// stay.
func TestCutToCompleteBlocks(t *testing.T) {
	sizes := []int{100, 700 << 10, 3, 1500, 0, 300 << 10, 64}
	for _, format := range []Format{FormatPcapNG, FormatPcap} {
		for _, buffer := range []int{4096, 0} {
			for _, room := range []int{10, 30, 100, 5000, 800 << 10, 1 << 20, 1200 << 10, 4 << 20} {
				for _, ref := range []bool{false, true} {
					t.Run(fmt.Sprintf("%v/buffer %d/room %d/ref %v", format, buffer, room, ref), func(t *testing.T) {
						testCut(t, format, buffer, room, sizes, ref)
					})
				}
			}
		}
	}
}

// testCut writes packets of the given sizes into a file with room bytes
// left; with ref, through WritePacketRef, so that the failing batch is a
// vectored one of buffer pieces and referenced packet data.
func testCut(t *testing.T, format Format, buffer, room int, sizes []int, ref bool) {
	path := filepath.Join(t.TempDir(), "capture")
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	prefix := []byte("not ours")
	if _, err := file.Write(prefix); err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(&roomFile{File: file, room: room}, &Config{Format: format, BufferSize: buffer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddInterface(Interface{LinkType: LinkTypeRaw, SnapLen: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	var written [][]byte
	for i, n := range sizes {
		data := bytes.Repeat([]byte{byte(i + 1)}, n)
		write := w.WritePacket
		if ref {
			write = w.WritePacketRef
		}
		if err := write(&Packet{Timestamp: int64(i), Data: data}); err != nil {
			break
		}
		written = append(written, data)
	}
	err = w.Close()
	total := 0
	for _, n := range sizes {
		total += n + 48
	}
	if room > total+100 {
		if err != nil {
			t.Fatalf("Close with room to spare: %v", err)
		}
	} else if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Close: %v, want ENOSPC", err)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(content, prefix) {
		t.Fatalf("the bytes before the capture were touched: %q", content[:min(len(content), 20)])
	}
	capture := content[len(prefix):]
	if len(capture) == 0 {
		return // not even the first block fitted
	}
	got := readClean(t, format, capture)
	if len(got) > len(written) {
		t.Fatalf("%d packets on disk, %d written", len(got), len(written))
	}
	for i := range got {
		if !bytes.Equal(got[i], written[i]) {
			t.Fatalf("packet %d differs", i)
		}
	}
}

// readClean reads a capture with gopacket's readers (and the strict one),
// which must reach a clean end, and returns its packets.
func readClean(t *testing.T, format Format, file []byte) [][]byte {
	t.Helper()
	var got [][]byte
	var err error
	if format == FormatPcap {
		var r *pcapgo.Reader
		if r, err = pcapgo.NewReader(bytes.NewReader(file)); err != nil {
			t.Fatal(err)
		}
		for {
			var data []byte
			if data, _, err = r.ReadPacketData(); err != nil {
				break
			}
			got = append(got, data)
		}
	} else {
		f, perr := parseNg(file)
		if perr != nil {
			t.Fatalf("strict reader: %v", perr)
		}
		if len(f.ifaces) == 0 {
			// A section header alone: an empty capture to tshark, an
			// error to gopacket, which wants an interface.
			return nil
		}
		var r *pcapgo.NgReader
		if r, err = pcapgo.NewNgReader(bytes.NewReader(file), pcapgo.DefaultNgReaderOptions); err != nil {
			t.Fatal(err)
		}
		for {
			var data []byte
			if data, _, err = r.ReadPacketData(); err != nil {
				break
			}
			got = append(got, data)
		}
		if len(f.packets) != len(got) {
			t.Errorf("strict reader found %d packets, gopacket %d", len(f.packets), len(got))
		}
	}
	if err != io.EOF {
		t.Fatalf("reading the capture ended with %v, want a clean EOF", err)
	}
	return got
}
