package pcapng

import (
	"bytes"
	"testing"
)

// TestSize: Size is the file's size once flushed, at every step, for
// copied and referenced packets, in both formats.
func TestSize(t *testing.T) {
	for _, f := range []Format{FormatPcapNG, FormatPcap} {
		var out bytes.Buffer
		w, err := NewWriter(&out, &Config{Format: f})
		if err != nil {
			t.Fatal(err)
		}
		id, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet})
		if err != nil {
			t.Fatal(err)
		}
		check := func(step string) {
			t.Helper()
			want := w.Size()
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := int64(out.Len()); got != want || w.Size() != want {
				t.Errorf("%v, %s: Size %d before the flush, file %d after, Size %d", f, step, want, got, w.Size())
			}
		}
		check("header")
		small, large := make([]byte, 60), make([]byte, 3000)
		for i := 0; i < 3; i++ {
			if err := w.WritePacket(&Packet{Interface: id, Data: small, Length: 60}); err != nil {
				t.Fatal(err)
			}
			if err := w.WritePacketRef(&Packet{Interface: id, Data: large, Length: 3000}); err != nil {
				t.Fatal(err)
			}
		}
		check("packets")
		if err := w.WriteStats(id, Stats{}); err != nil {
			t.Fatal(err)
		}
		check("statistics")
	}
}
