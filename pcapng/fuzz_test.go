package pcapng

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
)

// FuzzWriter drives the writer with fuzzed comments, option values, names
// and packet sizes. Invariants: it never panics; every refusal is
// ErrTooLong or os.ErrInvalid and exactly the calls the format cannot hold
// are refused; and the file it produces is accepted by the strict test
// reader and by gopacket's reader, which both find exactly the accepted
// packets, names and metadata.
func FuzzWriter(f *testing.F) {
	f.Add("comment", "eth0", "tcp port 80", []byte{1, 2, 3, 200, 255}, uint8(0), uint16(0))
	f.Add("", "", "", []byte{}, uint8(1), uint16(1))
	f.Add(strings.Repeat("c", 70000), "n\x00ame", "", []byte{7, 7, 7}, uint8(2), uint16(3))
	f.Add("ü\xff", strings.Repeat("x", 65535), strings.Repeat("f", 65535), []byte{0, 255, 128, 3}, uint8(255), uint16(700))
	f.Fuzz(func(t *testing.T, comment, name, filter string, sizes []byte, mode uint8, bufSize uint16) {
		if len(sizes) > 32 {
			sizes = sizes[:32] // packets of up to 320 KiB each: bound the memory
		}
		format := FormatPcapNG
		if mode&1 != 0 {
			format = FormatPcap
		}
		var out bytes.Buffer
		cfg := &Config{Format: format, Comments: []string{comment, name}, UserAppl: name, BufferSize: int(bufSize)}
		w, err := NewWriter(&out, cfg)
		// Three values of at most MaxOptionLen always fit MaxBlockSize.
		shbFits := format == FormatPcap || len(comment) <= MaxOptionLen && len(name) <= MaxOptionLen
		if err != nil {
			if shbFits || !errors.Is(err, ErrTooLong) {
				t.Fatalf("NewWriter: %v", err)
			}
			return
		}
		if !shbFits {
			t.Fatal("NewWriter accepted a section header that does not fit")
		}

		snaplen := uint32(mode>>1) * 1031 // 0 means DefaultSnapLen
		ifc := Interface{LinkType: LinkTypeEthernet, SnapLen: snaplen, Name: name, Filter: filter, Description: comment}
		_, err = w.AddInterface(ifc)
		ifcFits := format == FormatPcap ||
			len(name) <= MaxOptionLen && len(comment) <= MaxOptionLen && len(filter) < MaxOptionLen
		if (err == nil) != ifcFits {
			t.Fatalf("AddInterface(name %d, description %d, filter %d bytes): %v", len(name), len(comment), len(filter), err)
		}
		if err != nil {
			if !errors.Is(err, ErrTooLong) {
				t.Fatalf("AddInterface: %v", err)
			}
			ifc.Name, ifc.Description, ifc.Filter = "", "", ""
			if _, err := w.AddInterface(ifc); err != nil {
				t.Fatal(err)
			}
		}
		if snaplen == 0 {
			snaplen = DefaultSnapLen
		}

		var written []Packet
		var names []sampleNames
		for i, b := range sizes {
			n := int(b) * int(b) * 5 % (int(snaplen) + 300)
			p := Packet{
				Timestamp: int64(i)*1e9 + int64(b),
				Data:      bytes.Repeat([]byte{b}, n),
				Direction: Direction(b % 4),
				Reception: Reception(b % 6),
				Comment:   comment[:int(b)*len(comment)/255],
				DropCount: uint64(b % 3),
			}
			if b%5 == 0 {
				p.Length = n + int(b)
			}
			err := w.WritePacket(&p)
			valid := n <= int(snaplen) && (format == FormatPcap ||
				p.Direction <= DirectionOutbound && p.Reception <= ReceptionPromiscuous && len(p.Comment) <= MaxOptionLen)
			if (err == nil) != valid {
				t.Fatalf("packet %d (%d bytes, flags %d/%d, comment %d bytes): %v", i, n, p.Direction, p.Reception, len(p.Comment), err)
			}
			if err != nil {
				if !errors.Is(err, ErrTooLong) && !errors.Is(err, os.ErrInvalid) {
					t.Fatalf("packet %d: %v", i, err)
				}
				continue
			}
			written = append(written, p)
			if b%7 == 0 && name != "" {
				a := netip.AddrFrom16([16]byte{0: 0x20, 1: 0x01, 15: b})
				if b%2 == 0 {
					a = netip.AddrFrom4([4]byte{10, 0, 0, b})
				}
				err := w.AddNames(a, name)
				fits := len(name)+1+a.BitLen()/8 <= MaxOptionLen && !strings.Contains(name, "\x00")
				if format == FormatPcap {
					fits = true
				}
				if (err == nil) != fits {
					t.Fatalf("AddNames(%s, %d bytes): %v", a, len(name), err)
				}
				if err == nil && format == FormatPcapNG {
					names = append(names, sampleNames{a, []string{name}})
				}
			}
		}
		if err := w.WriteStats(0, Stats{StartTime: 1, EndTime: 2, OSDrop: 3, HasOSDrop: true}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if format == FormatPcap {
			checkPcap(t, out.Bytes(), written)
		} else {
			checkPcapNG(t, out.Bytes(), written, names)
		}
	})
}

func checkPcap(t *testing.T, file []byte, written []Packet) {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range written {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(data, want.Data) || ci.Timestamp.UnixNano() != want.Timestamp || ci.Length != origLen(&want) {
			t.Fatalf("packet %d differs", i)
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Fatalf("after %d packets: %v", len(written), err)
	}
}

func checkPcapNG(t *testing.T, file []byte, written []Packet, names []sampleNames) {
	t.Helper()
	f, err := parseNg(file)
	if err != nil {
		t.Fatalf("strict reader: %v", err)
	}
	if len(f.packets) != len(written) || len(f.names) != len(names) || len(f.stats) != 1 {
		t.Fatalf("strict reader: %d packets, %d names, %d statistics; want %d, %d, 1",
			len(f.packets), len(f.names), len(f.stats), len(written), len(names))
	}
	for i, p := range f.packets {
		want := written[i]
		c, _ := opt(p.opts, optComment)
		if !bytes.Equal(p.data, want.Data) || p.ts != uint64(want.Timestamp) || string(c) != want.Comment {
			t.Fatalf("strict reader: packet %d differs", i)
		}
	}
	for i, n := range f.names {
		if n.addr != names[i].addr || len(n.names) != 1 || n.names[0] != names[i].names[0] {
			t.Fatalf("strict reader: name %d is %v %q", i, n.addr, n.names)
		}
	}

	r, err := pcapgo.NewNgReader(bytes.NewReader(file), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("gopacket: %v", err)
	}
	for i, want := range written {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatalf("gopacket: packet %d: %v", i, err)
		}
		if !bytes.Equal(data, want.Data) || ci.Timestamp.UnixNano() != want.Timestamp || ci.Length != origLen(&want) {
			t.Fatalf("gopacket: packet %d differs", i)
		}
		if want.Comment != "" && (len(opts.Comments) != 1 || opts.Comments[0] != want.Comment) {
			t.Fatalf("gopacket: packet %d comments %q", i, opts.Comments)
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Fatalf("gopacket: after %d packets: %v", len(written), err)
	}
	if r.NNames() != len(names) {
		t.Fatalf("gopacket: %d names, want %d", r.NNames(), len(names))
	}
}
