//go:build linux

package main

import (
	"fmt"
	"io"
	"testing"

	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
)

// BenchmarkHandle is the capture path per packet (ring callback -> pcapng
// writer), without and with the connection summary fed beside it: the
// summary's cost on capture is the copy of a packet's head and a
// non-blocking hand-over.
func BenchmarkHandle(b *testing.B) {
	for _, size := range []int{64, 1514} {
		for _, withSum := range []bool{false, true} {
			b.Run(fmt.Sprintf("%d/summary=%v", size, withSum), func(b *testing.B) {
				w, err := pcapng.NewWriter(io.Discard, &pcapng.Config{Format: pcapng.FormatPcapNG})
				if err != nil {
					b.Fatal(err)
				}
				id, _ := w.AddInterface(pcapng.Interface{LinkType: pcapng.LinkTypeEthernet})
				c := &capture{w: w, iface: id, programSide: true}
				if withSum {
					c.sum = newSummarizer()
					defer c.sum.finish()
				}
				data := make([]byte, size)
				copy(data, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45})
				p := &rawcap.Packet{Data: data, Length: size, Type: rawcap.PacketHost}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					p.Timestamp = int64(i)
					if err := c.handle(p); err != nil {
						b.Fatal(err)
					}
				}
				if withSum {
					b.ReportMetric(float64(c.sum.skipped)/float64(b.N), "skipped/op")
				}
			})
		}
	}
}
