package pcapng

import (
	"io"
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
