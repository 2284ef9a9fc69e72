package pcapng

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func origLen(p *Packet) int {
	if p.Length == 0 {
		return len(p.Data)
	}
	return p.Length
}

// TestRoundTripGopacket reads the sample back with gopacket's pcapng
// reader: packets, nanosecond timestamps, lengths, interfaces, options,
// names and statistics must be what was written.
func TestRoundTripGopacket(t *testing.T) {
	s := newSample(t)
	file := s.write(t)

	stats := map[int]pcapgo.NgInterfaceStatistics{}
	r, err := pcapgo.NewNgReader(bytes.NewReader(file), pcapgo.NgReaderOptions{
		WantMixedLinkType:  true,
		StatisticsCallback: func(i int, st pcapgo.NgInterfaceStatistics) { stats[i] = st },
	})
	if err != nil {
		t.Fatal(err)
	}
	si := r.SectionInfo()
	if si.Hardware != s.cfg.Hardware || si.OS != s.cfg.OS || si.Application != s.cfg.UserAppl {
		t.Errorf("section info %+v", si)
	}
	for i := range s.packets {
		want := &s.packets[i]
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(data, want.Data) {
			t.Errorf("packet %d: data differs", i)
		}
		if got := ci.Timestamp.UnixNano(); got != want.Timestamp {
			t.Errorf("packet %d: timestamp %d, want %d", i, got, want.Timestamp)
		}
		if ci.CaptureLength != len(want.Data) || ci.Length != origLen(want) || ci.InterfaceIndex != want.Interface {
			t.Errorf("packet %d: caplen %d len %d iface %d", i, ci.CaptureLength, ci.Length, ci.InterfaceIndex)
		}
		var wantComments []string
		if want.Comment != "" {
			wantComments = []string{want.Comment}
		}
		if !slices.Equal(opts.Comments, wantComments) {
			t.Errorf("packet %d: comments %q, want %q", i, opts.Comments, wantComments)
		}
		if want.Direction != 0 || want.Reception != 0 {
			if opts.Flags == nil {
				t.Errorf("packet %d: no epb_flags", i)
			} else if uint32(opts.Flags.Direction) != uint32(want.Direction) || uint32(opts.Flags.Reception) != uint32(want.Reception)<<2 {
				t.Errorf("packet %d: flags %+v", i, *opts.Flags)
			}
		} else if opts.Flags != nil {
			t.Errorf("packet %d: unexpected flags %+v", i, *opts.Flags)
		}
		if (want.DropCount != 0) != (opts.DropCount != nil) || opts.DropCount != nil && *opts.DropCount != want.DropCount {
			t.Errorf("packet %d: drop count %v, want %d", i, opts.DropCount, want.DropCount)
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Fatalf("after the last packet: %v, want EOF", err)
	}

	if r.NInterfaces() != len(s.ifaces) {
		t.Fatalf("%d interfaces, want %d", r.NInterfaces(), len(s.ifaces))
	}
	for i, want := range s.ifaces {
		got, _ := r.Interface(i)
		if got.Name != want.Name || got.Description != want.Description || got.Filter != want.Filter ||
			got.OS != want.OS || got.LinkType != layers.LinkType(want.LinkType) || got.SnapLength != want.SnapLen ||
			got.TimestampResolution != 9 {
			t.Errorf("interface %d: %+v", i, got)
		}
		st, ok := stats[i]
		ws := s.stats[i]
		if !ok {
			t.Errorf("interface %d: no statistics", i)
			continue
		}
		if st.StartTime.UnixNano() != ws.StartTime || st.EndTime.UnixNano() != ws.EndTime {
			t.Errorf("interface %d: statistics times %v %v", i, st.StartTime, st.EndTime)
		}
		wantRecv, wantDrop := uint64(pcapgo.NgNoValue64), uint64(pcapgo.NgNoValue64)
		if ws.HasReceived {
			wantRecv = ws.Received
		}
		if ws.HasIfDrop {
			wantDrop = ws.IfDrop
		}
		if st.PacketsReceived != wantRecv || st.PacketsDropped != wantDrop {
			t.Errorf("interface %d: received %d dropped %d", i, st.PacketsReceived, st.PacketsDropped)
		}
	}

	if r.NNames() != len(s.names) {
		t.Fatalf("%d name records, want %d", r.NNames(), len(s.names))
	}
	for i, want := range s.names {
		got, _ := r.Name(i)
		addr, ok := got.Addr.(*pcapgo.NgIPAddress)
		if !ok || addr.Addr != want.addr || !slices.Equal(got.Names, want.names) {
			t.Errorf("name record %d: %+v %q", i, got.Addr, got.Names)
		}
	}
}

// TestRoundTripStrict reads the sample with the strict reader of this
// package's tests, which sees what gopacket skips: the section comments,
// isb_osdrop, isb_filteraccept, isb_usrdeliv and the block layout.
func TestRoundTripStrict(t *testing.T) {
	s := newSample(t)
	f, err := parseNg(s.write(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := strOpts(f.shbOpts, optComment); !slices.Equal(got, s.cfg.Comments) {
		t.Errorf("section comments %q", got)
	}
	if got := strOpts(f.shbOpts, optSHBUserAppl); !slices.Equal(got, []string{s.cfg.UserAppl}) {
		t.Errorf("shb_userappl %q", got)
	}
	if len(f.packets) != len(s.packets) {
		t.Fatalf("%d packets", len(f.packets))
	}
	for i, p := range f.packets {
		if p.ts != uint64(s.packets[i].Timestamp) || !bytes.Equal(p.data, s.packets[i].Data) {
			t.Errorf("packet %d differs", i)
		}
	}
	// Names are written before the packet after AddNames.
	want := []uint32{blockSHB, blockIDB, blockIDB, blockEPB, blockNRB, blockEPB}
	if !slices.Equal(f.order[:len(want)], want) {
		t.Errorf("block order %v, want prefix %v", f.order, want)
	}
	delivered := map[int]uint64{}
	for _, p := range s.packets {
		delivered[p.Interface]++
	}
	for _, st := range f.stats {
		ws := s.stats[int(st.iface)]
		for _, c := range []struct {
			code uint16
			has  bool
			v    uint64
		}{
			{optISBIfRecv, ws.HasReceived, ws.Received},
			{optISBIfDrop, ws.HasIfDrop, ws.IfDrop},
			{optISBOSDrop, ws.HasOSDrop, ws.OSDrop},
			{optISBFilterAccept, ws.HasFilterAccept, ws.FilterAccept},
			{optISBUsrDeliv, true, delivered[int(st.iface)]},
		} {
			v, ok := opt(st.opts, c.code)
			if ok != c.has || ok && (len(v) != 8 || le.Uint64(v) != c.v) {
				t.Errorf("interface %d: option %d = % x (%v), want %d (%v)", st.iface, c.code, v, ok, c.v, c.has)
			}
		}
		if st.ts != uint64(ws.EndTime) {
			t.Errorf("interface %d: statistics timestamp %d", st.iface, st.ts)
		}
	}
}

// TestRoundTripPcap reads classic pcap back with gopacket's reader.
func TestRoundTripPcap(t *testing.T) {
	s := newSample(t).pcapOnly()
	file := s.write(t)
	r, err := pcapgo.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if r.Resolution().ToDuration() != time.Nanosecond || r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() != s.ifaces[0].SnapLen {
		t.Errorf("resolution %v link type %v snaplen %d", r.Resolution(), r.LinkType(), r.Snaplen())
	}
	if le.Uint32(file) != 0xa1b23c4d {
		t.Errorf("magic %#x", le.Uint32(file))
	}
	for i := range s.packets {
		want := &s.packets[i]
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(data, want.Data) || ci.Timestamp.UnixNano() != want.Timestamp ||
			ci.CaptureLength != len(want.Data) || ci.Length != origLen(want) {
			t.Errorf("packet %d: %+v", i, ci)
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Fatalf("after the last packet: %v, want EOF", err)
	}
}

// TestPcapEmpty: a pcap writer closed without interface still leaves a
// readable (empty) capture; a second interface is refused.
func TestPcapEmpty(t *testing.T) {
	var out bytes.Buffer
	w, err := NewWriter(&out, &Config{Format: FormatPcap})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pcapgo.NewReader(bytes.NewReader(out.Bytes())); err != nil {
		t.Fatal(err)
	}
	w, _ = NewWriter(io.Discard, &Config{Format: FormatPcap})
	if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet}); !errors.Is(err, os.ErrInvalid) {
		t.Fatalf("second interface: %v", err)
	}
}

// TestRefused: values that do not fit are refused with a clear error,
// nothing of them is written, and the writer stays usable.
func TestRefused(t *testing.T) {
	long := strings.Repeat("x", MaxOptionLen+1)
	if _, err := NewWriter(io.Discard, &Config{Format: FormatPcapNG, Comments: []string{long}}); !errors.Is(err, ErrTooLong) {
		t.Errorf("long section comment: %v", err)
	}
	if _, err := NewWriter(io.Discard, &Config{Format: FormatPcapNG, UserAppl: long}); !errors.Is(err, ErrTooLong) {
		t.Errorf("long shb_userappl: %v", err)
	}
	many := make([]string, 7)
	for i := range many {
		many[i] = long[:MaxOptionLen]
	}
	if _, err := NewWriter(io.Discard, &Config{Format: FormatPcapNG, Comments: many}); !errors.Is(err, ErrTooLong) {
		t.Errorf("section header over MaxBlockSize: %v", err)
	}
	if _, err := NewWriter(io.Discard, &Config{}); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("zero format: %v", err)
	}

	var out bytes.Buffer
	w, err := NewWriter(&out, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range []Interface{{Name: long}, {Description: long}, {OS: long}, {Filter: long[:MaxOptionLen]}} {
		if _, err := w.AddInterface(ifc); !errors.Is(err, ErrTooLong) {
			t.Errorf("AddInterface with a long value: %v", err)
		}
	}
	if _, err := w.AddInterface(Interface{SnapLen: MaxSnapLen + 1}); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("AddInterface with a huge snap length: %v", err)
	}
	id, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet, SnapLen: 100})
	if err != nil || id != 0 {
		t.Fatalf("AddInterface = %d, %v", id, err)
	}
	data := make([]byte, 101)
	for _, c := range []struct {
		name string
		p    Packet
		is   error
	}{
		{"unknown interface", Packet{Interface: 1, Data: data[:10]}, os.ErrInvalid},
		{"negative interface", Packet{Interface: -1, Data: data[:10]}, os.ErrInvalid},
		{"over snaplen", Packet{Data: data}, os.ErrInvalid},
		{"length below caplen", Packet{Length: 5, Data: data[:10]}, os.ErrInvalid},
		{"negative timestamp", Packet{Timestamp: -1, Data: data[:10]}, os.ErrInvalid},
		{"bad direction", Packet{Direction: 3, Data: data[:10]}, os.ErrInvalid},
		{"bad reception", Packet{Reception: 5, Data: data[:10]}, os.ErrInvalid},
		{"long comment", Packet{Comment: long, Data: data[:10]}, ErrTooLong},
	} {
		if err := w.WritePacket(&c.p); !errors.Is(err, c.is) {
			t.Errorf("%s: %v, want %v", c.name, err, c.is)
		}
	}
	if err := w.AddNames(ipServer, long[:MaxOptionLen-4]); !errors.Is(err, ErrTooLong) {
		t.Errorf("long name: %v", err)
	}
	for _, names := range [][]string{nil, {""}, {"a\x00b"}} {
		if err := w.AddNames(ipServer, names...); !errors.Is(err, os.ErrInvalid) {
			t.Errorf("names %q: %v", names, err)
		}
	}
	if err := w.WriteStats(1, Stats{}); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("stats of an unknown interface: %v", err)
	}
	if err := w.WritePacket(&Packet{Data: data[:100]}); err != nil {
		t.Fatalf("valid packet after refusals: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := parseNg(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.ifaces) != 1 || len(f.packets) != 1 || len(f.names) != 0 {
		t.Errorf("%d interfaces, %d packets, %d names; want 1, 1, 0", len(f.ifaces), len(f.packets), len(f.names))
	}
}

// TestLargePackets writes packets larger than the buffer (and its slack)
// with a snap length above the default, through both formats.
func TestLargePackets(t *testing.T) {
	for _, format := range []Format{FormatPcapNG, FormatPcap} {
		t.Run(format.String(), func(t *testing.T) {
			var out bytes.Buffer
			w, err := NewWriter(&out, &Config{Format: format, BufferSize: 4096})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.AddInterface(Interface{LinkType: LinkTypeRaw, SnapLen: 1 << 20}); err != nil {
				t.Fatal(err)
			}
			var want [][]byte
			for i, n := range []int{1<<20 - 1, 3, 500 << 10, 0, 4097} {
				data := bytes.Repeat([]byte{byte(i + 1)}, n)
				want = append(want, data)
				if err := w.WritePacket(&Packet{Timestamp: int64(i), Data: data, Comment: "c", Direction: DirectionInbound}); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			if format == FormatPcapNG {
				f, err := parseNg(out.Bytes())
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range f.packets {
					got = append(got, p.data)
				}
			} else {
				r, err := pcapgo.NewReader(bytes.NewReader(out.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				for {
					data, _, err := r.ReadPacketData()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, data)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d packets, want %d", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("packet %d differs", i)
				}
			}
		})
	}
}

// TestNamesBatching: name records are written before the next packet and
// at Flush, in blocks that gopacket reads, and a long batch is split.
func TestNamesBatching(t *testing.T) {
	var out bytes.Buffer
	w, _ := NewWriter(&out, nil)
	if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet}); err != nil {
		t.Fatal(err)
	}
	var want []sampleNames
	name := strings.Repeat("n", 200)
	for i := range 1000 {
		a := ipServer.As4()
		a[2], a[3] = byte(i>>8), byte(i)
		n := sampleNames{addr: netip.AddrFrom4(a), names: []string{name}}
		want = append(want, n)
		if err := w.AddNames(n.addr, n.names...); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f, err := parseNg(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.names) != len(want) {
		t.Fatalf("%d names after Flush, want %d", len(f.names), len(want))
	}
	nrbs := 0
	for _, typ := range f.order {
		if typ == blockNRB {
			nrbs++
		}
	}
	if nrbs < 2 {
		t.Errorf("%d name blocks for 200 KiB of names, want them split", nrbs)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(out.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Fatal(err)
	}
	if r.NNames() != len(want) {
		t.Fatalf("gopacket read %d names, want %d", r.NNames(), len(want))
	}
}

// TestStickyError: the first write error is returned from every later
// call, Close included, every time.
func TestStickyError(t *testing.T) {
	for _, format := range []Format{FormatPcapNG, FormatPcap} {
		t.Run(format.String(), func(t *testing.T) {
			boom := errors.New("boom")
			fw := &failWriter{after: 1, err: boom}
			w, err := NewWriter(fw, &Config{Format: format, BufferSize: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet}); err != nil {
				t.Fatal(err)
			}
			p := &Packet{Data: make([]byte, 600)}
			// The first batch is accepted, the second fails.
			for i := 0; err == nil; i++ {
				if i > 10 {
					t.Fatal("no error after 10 packets")
				}
				err = w.WritePacket(p)
			}
			if !errors.Is(err, boom) {
				t.Fatalf("error %v, want boom", err)
			}
			for i, e := range []error{
				w.WritePacket(p), w.Flush(), w.AddNames(ipServer, "x"), w.WriteStats(0, Stats{}),
				w.Close(), w.Close(), w.WritePacket(p),
			} {
				if !errors.Is(e, boom) {
					t.Errorf("call %d after the failure: %v", i, e)
				}
			}
			if _, err := w.AddInterface(Interface{}); !errors.Is(err, boom) {
				t.Errorf("AddInterface after the failure: %v", err)
			}
			if fw.writes != 2 {
				t.Errorf("%d writes reached the writer, want 2", fw.writes)
			}
		})
	}
}

// TestClosed: Close is idempotent and later calls report os.ErrClosed.
func TestClosed(t *testing.T) {
	w, _ := NewWriter(io.Discard, nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.WritePacket(&Packet{}); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("WritePacket after Close: %v", err)
	}
	if err := w.Flush(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
}

// TestShortWrite: a writer that takes less than it was given without an
// error is a failure (io.ErrShortWrite), not a silent loss.
func TestShortWrite(t *testing.T) {
	w, _ := NewWriter(shortWriter{}, nil)
	if err := w.Flush(); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("Flush: %v", err)
	}
}

// TestBatchSizes: every write(2) but the last carries at least
// BufferSize bytes.
func TestBatchSizes(t *testing.T) {
	for _, format := range []Format{FormatPcapNG, FormatPcap} {
		t.Run(format.String(), func(t *testing.T) {
			rec := &recordWriter{}
			w, _ := NewWriter(rec, &Config{Format: format})
			if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet}); err != nil {
				t.Fatal(err)
			}
			sizes := []int{64, 1500, 65535, 9000, 262144, 1, 0, 333}
			total := 0
			for i := 0; total < 20<<20; i++ {
				p := Packet{Data: make([]byte, sizes[i%len(sizes)]), Comment: strings.Repeat("c", i%7)}
				if err := w.WritePacket(&p); err != nil {
					t.Fatal(err)
				}
				total += len(p.Data)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if len(rec.sizes) < 10 {
				t.Fatalf("only %d writes", len(rec.sizes))
			}
			for i, n := range rec.sizes[:len(rec.sizes)-1] {
				if n < DefaultBufferSize {
					t.Errorf("write %d of %d bytes, want >= %d", i, n, DefaultBufferSize)
				}
			}
		})
	}
}

// TestWritePacketAllocs proves the packet path does not allocate, with
// and without options, for both formats.
func TestWritePacketAllocs(t *testing.T) {
	for _, format := range []Format{FormatPcapNG, FormatPcap} {
		w, _ := NewWriter(io.Discard, &Config{Format: format})
		if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet}); err != nil {
			t.Fatal(err)
		}
		p := &Packet{Data: make([]byte, 1500), Timestamp: 1, Direction: DirectionOutbound, Comment: "c", DropCount: 1}
		if n := testing.AllocsPerRun(10000, func() {
			p.Timestamp++
			if err := w.WritePacket(p); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%v: %v allocations per packet", format, n)
		}
	}
}

type failWriter struct {
	after, writes int
	err           error
}

func (f *failWriter) Write(p []byte) (int, error) {
	f.writes++
	if f.writes > f.after {
		return 0, f.err
	}
	return len(p), nil
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) - 1, nil }

type recordWriter struct{ sizes []int }

func (r *recordWriter) Write(p []byte) (int, error) {
	r.sizes = append(r.sizes, len(p))
	return len(p), nil
}

// TestShortPackets checks the fast path of WritePacket at the sizes where
// its padding word and the header overlap: no data at all (the padding
// word is then the original length) up to one padded word.
func TestShortPackets(t *testing.T) {
	var out bytes.Buffer
	w, err := NewWriter(&out, &Config{Format: FormatPcapNG})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet}); err != nil {
		t.Fatal(err)
	}
	data := []byte{0xa1, 0xa2, 0xa3, 0xa4, 0xa5}
	for n := 0; n <= len(data); n++ {
		p := &Packet{Timestamp: int64(n), Length: 60 + n, Data: data[:n], Direction: DirectionInbound, Reception: ReceptionUnicast}
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := parseNg(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.packets) != len(data)+1 {
		t.Fatalf("%d packets, want %d", len(f.packets), len(data)+1)
	}
	for n, p := range f.packets {
		flags, ok := opt(p.opts, optEPBFlags)
		if p.ts != uint64(n) || p.caplen != uint32(n) || p.origlen != uint32(60+n) || !bytes.Equal(p.data, data[:n]) ||
			!ok || le.Uint32(flags) != uint32(DirectionInbound)|uint32(ReceptionUnicast)<<2 {
			t.Errorf("packet of %d bytes read back as ts %d, caplen %d, origlen %d, data % x, flags % x", n, p.ts, p.caplen, p.origlen, p.data, flags)
		}
	}
}
