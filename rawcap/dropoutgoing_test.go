package rawcap

import (
	"encoding/binary"
	"math/rand/v2"

	"golang.org/x/net/bpf"
	"testing"

	"github.com/nsntrace/nsntrace/internal/bpfvm"
	"github.com/nsntrace/nsntrace/rawcap/filter"
)

// TestDropOutgoing: the prefix rejects exactly the outgoing packets and
// leaves every other verdict of the filter it precedes as it was, for
// filters that read A before they load it (none should) as well.
func TestDropOutgoing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	frames := make([][]byte, 200)
	for i := range frames {
		f := make([]byte, 42+rng.IntN(100))
		for j := range f {
			f[j] = byte(rng.Uint32())
		}
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		f[14] = 0x45
		f[23] = []byte{6, 17, 1}[i%3]
		binary.BigEndian.PutUint16(f[16:], uint16(len(f)-14))
		binary.BigEndian.PutUint16(f[20:], 0) // not a fragment
		binary.BigEndian.PutUint16(f[36:], []uint16{80, 53, 7}[i%3])
		frames[i] = f
	}
	for _, expr := range []string{"", "tcp", "udp port 53", "icmp or tcp port 80", "vlan and udp", "greater 100"} {
		var prog []bpf.RawInstruction
		if expr != "" {
			var err error
			if prog, err = filter.Compile(expr, 262144); err != nil {
				t.Fatalf("%q: %v", expr, err)
			}
		}
		withPrefix := dropOutgoing(prog)
		for i, f := range frames {
			for pt := PacketHost; pt <= PacketOutgoing; pt++ {
				m := bpfvm.Meta{PktType: uint32(pt), Protocol: 0x0800}
				want := uint32(acceptAll)
				if prog != nil {
					want = bpfvm.Run(prog, f, m)
				}
				if pt == PacketOutgoing {
					want = 0
				}
				if got := bpfvm.Run(withPrefix, f, m); got != want {
					t.Errorf("%q, frame %d, type %d: verdict %d, want %d", expr, i, pt, got, want)
				}
			}
		}
	}
}
