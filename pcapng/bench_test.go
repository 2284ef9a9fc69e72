package pcapng

import (
	"io"
	"os"
	"testing"
)

// benchmarkWrite writes packets of size bytes with direction flags (what
// every captured packet carries) into io.Discard.
func benchmarkWrite(b *testing.B, format Format, size int) {
	w, err := NewWriter(io.Discard, &Config{Format: format})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet}); err != nil {
		b.Fatal(err)
	}
	p := &Packet{Data: make([]byte, size), Timestamp: 1700000000_000000000, Direction: DirectionOutbound}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.Timestamp++
		if err := w.WritePacket(p); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkWritePacket64(b *testing.B)       { benchmarkWrite(b, FormatPcapNG, 64) }
func BenchmarkWritePacket1500(b *testing.B)     { benchmarkWrite(b, FormatPcapNG, 1500) }
func BenchmarkWritePacket65535(b *testing.B)    { benchmarkWrite(b, FormatPcapNG, 65535) }
func BenchmarkWritePacketPcap64(b *testing.B)   { benchmarkWrite(b, FormatPcap, 64) }
func BenchmarkWritePacketPcap1500(b *testing.B) { benchmarkWrite(b, FormatPcap, 1500) }

// benchmarkWriteDevNull writes packets of size bytes into /dev/null as an
// *os.File, by copy or by reference: the writer's own cost per packet when
// its batches reach a file descriptor (writev(2) for references), without
// the cost of a file system.
func benchmarkWriteDevNull(b *testing.B, size int, ref bool) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Skip(err)
	}
	defer f.Close()
	w, err := NewWriter(f, &Config{Format: FormatPcapNG})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet}); err != nil {
		b.Fatal(err)
	}
	p := &Packet{Data: make([]byte, size), Timestamp: 1700000000_000000000, Direction: DirectionOutbound}
	write := w.WritePacket
	if ref {
		write = w.WritePacketRef
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.Timestamp++
		if err := write(p); err != nil {
			b.Fatal(err)
		}
		if i%64 == 63 {
			w.Release() // as the capture loop does at the end of a ring block
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkDevNullCopy1514(b *testing.B)  { benchmarkWriteDevNull(b, 1514, false) }
func BenchmarkDevNullRef1514(b *testing.B)   { benchmarkWriteDevNull(b, 1514, true) }
func BenchmarkDevNullCopy65535(b *testing.B) { benchmarkWriteDevNull(b, 65535, false) }
func BenchmarkDevNullRef65535(b *testing.B)  { benchmarkWriteDevNull(b, 65535, true) }
