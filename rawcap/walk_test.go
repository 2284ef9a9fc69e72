package rawcap

import (
	"bytes"
	"testing"
)

// buildBlock lays out packets as the kernel does in a TPACKET_V3 block.
func buildBlock(size int, frames [][]byte, vlan []uint16) []byte {
	b := make([]byte, size)
	off := 64
	ne.PutUint32(b[bdNumPkts:], uint32(len(frames)))
	ne.PutUint32(b[bdOffFirstPkt:], uint32(off))
	for i, f := range frames {
		h := b[off:]
		mac := 80
		ne.PutUint32(h[hdrSec:], uint32(100+i))
		ne.PutUint32(h[hdrNsec:], 5)
		ne.PutUint32(h[hdrSnaplen:], uint32(len(f)))
		ne.PutUint32(h[hdrLen:], uint32(len(f)))
		ne.PutUint16(h[hdrMac:], uint16(mac))
		if vlan != nil && vlan[i] != 0 {
			ne.PutUint32(h[hdrStatus:], statusVlanValid|statusTPIDValid)
			ne.PutUint32(h[hdrVlanTCI:], uint32(vlan[i]))
			ne.PutUint16(h[hdrVlanTPID:], 0x88a8)
		}
		ne.PutUint32(h[sllIfindex:], 7)
		h[sllPkttype] = byte(PacketOutgoing)
		copy(h[mac:], f)
		next := (mac + len(f) + 15) &^ 15
		if i < len(frames)-1 {
			ne.PutUint32(h[hdrNextOffset:], uint32(next))
		}
		off += next
	}
	return b
}

func TestWalk(t *testing.T) {
	f1 := bytes.Repeat([]byte{1}, 60)
	f2 := append(bytes.Repeat([]byte{0xaa}, 12), 0x08, 0x00, 9, 9, 9, 9)
	b := buildBlock(4096, [][]byte{f1, f2}, []uint16{0, 0x2064})
	w := walker{snapLen: 1000, scratch: make([]byte, 0, 2048)}
	var got []Packet
	if err := w.walk(b, 2, func(p *Packet) error { got = append(got, p.Clone()); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d packets", len(got))
	}
	if !bytes.Equal(got[0].Data, f1) || got[0].Length != 60 || got[0].Timestamp != 100e9+5 || got[0].IfIndex != 7 || got[0].Type != PacketOutgoing {
		t.Errorf("packet 0 = %+v", got[0])
	}
	want := append(append(bytes.Repeat([]byte{0xaa}, 12), 0x88, 0xa8, 0x20, 0x64), 0x08, 0x00, 9, 9, 9, 9)
	if !bytes.Equal(got[1].Data, want) || got[1].Length != len(want) {
		t.Errorf("vlan packet = % x (len %d), want % x", got[1].Data, got[1].Length, want)
	}
	// Snap length trims after re-insertion.
	w.snapLen = 14
	w.walk(b, 2, func(p *Packet) error { got[0] = p.Clone(); return nil })
	if len(got[0].Data) != 14 {
		t.Errorf("snaplen 14 gave %d bytes", len(got[0].Data))
	}
}

func TestWalkAllocs(t *testing.T) {
	f := bytes.Repeat([]byte{1}, 64)
	b := buildBlock(1<<16, [][]byte{f, f, f, f}, []uint16{0, 5, 0, 7})
	w := walker{snapLen: 262144, scratch: make([]byte, 0, 4096)}
	n := 0
	fn := func(p *Packet) error { n += len(p.Data); return nil }
	if a := testing.AllocsPerRun(1000, func() { w.walk(b, 4, fn) }); a != 0 {
		t.Fatalf("walk allocates %v times per block", a)
	}
}

func FuzzWalkBlock(f *testing.F) {
	f.Add(buildBlock(512, [][]byte{bytes.Repeat([]byte{1}, 60)}, nil), uint32(1))
	f.Add(buildBlock(512, [][]byte{bytes.Repeat([]byte{1}, 20), {2, 2}}, []uint16{1, 1}), uint32(3))
	f.Fuzz(func(t *testing.T, block []byte, n uint32) {
		w := walker{snapLen: 100, scratch: make([]byte, 0, 16)}
		w.walk(block, n%64, func(p *Packet) error {
			if len(p.Data) > 100 {
				t.Fatalf("data longer than snaplen: %d", len(p.Data))
			}
			return nil
		})
	})
}

// BenchmarkWalk walks a block of 64-byte frames as the kernel lays them
// out, with a callback that only counts: the walker's own cost a packet.
func BenchmarkWalk(b *testing.B) {
	frames := make([][]byte, 3000)
	for i := range frames {
		frames[i] = bytes.Repeat([]byte{byte(i)}, 64)
	}
	block := buildBlock(512<<10, frames, nil)
	var w walker
	n := 0
	count := func(*Packet) error { n++; return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := w.walk(block, uint32(len(frames)), count); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/packet")
}
