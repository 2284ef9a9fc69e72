//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
)

// BenchmarkHandle is the capture path per packet (ring callback -> pcapng
// writer), without and with the connection summary fed beside it, for one
// conversation and for a new conversation in every packet (the table fills
// and stays full: the summary's worst case), in UDP frames, which the
// summary accounts in line and never copies; and for a keep-alive load
// (keepalive: 32 TCP connections taking turns, a segment in and one out
// each, each packet of another connection than the one before).
func BenchmarkHandle(b *testing.B) {
	for _, size := range []int{64, 1514} {
		for _, flows := range []string{"one", "many", "keepalive"} {
			for _, withSum := range []bool{false, true} {
				b.Run(fmt.Sprintf("%d/flows=%s/summary=%v", size, flows, withSum), func(b *testing.B) {
					benchHandle(b, size, flows, withSum)
				})
			}
		}
	}
}

// keepAliveFrames are n connections' TCP segments of size bytes, each
// way (tcpFrame's, each connection on another remote port): in
// frames[2i] what the program receives, in frames[2i+1] what it sends.
func keepAliveFrames(n, size int) [][]byte {
	var frames [][]byte
	for i := 0; i < n; i++ {
		for _, out := range []bool{false, true} {
			f := tcpFrame(out, make([]byte, size-54))
			remote := f[34:] // the source port of what the program receives
			if out {
				remote = f[36:]
			}
			binary.BigEndian.PutUint16(remote, uint16(443+i))
			frames = append(frames, f)
		}
	}
	return frames
}

func benchHandle(b *testing.B, size int, flows string, withSum bool) {
	w, err := pcapng.NewWriter(io.Discard, &pcapng.Config{Format: pcapng.FormatPcapNG})
	if err != nil {
		b.Fatal(err)
	}
	id, _ := w.AddInterface(pcapng.Interface{LinkType: pcapng.LinkTypeEthernet})
	c := &capture{w: w, iface: id, programSide: true}
	c.main.mu = &c.mu // as newCapture does
	if withSum {
		c.sum = newSummarizer()
	}
	data := udpFrame(size, 4000, 9)
	p := &rawcap.Packet{Data: data, Length: size, Type: rawcap.PacketHost}
	ka := keepAliveFrames(32, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Timestamp = int64(i)
		switch flows {
		case "many": // with or without the summary, so that both pay for it
			binary.BigEndian.PutUint32(data[30:], uint32(i)) // destination address
		case "keepalive":
			// On the host's end of the veth what the program receives
			// is outgoing, what it sends comes in.
			p.Data, p.Type = ka[i%len(ka)], rawcap.PacketOutgoing
			if i&1 == 1 {
				p.Type = rawcap.PacketHost
			}
		}
		if err := c.handle(p); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if withSum {
		c.sum.finish()
		b.ReportMetric(float64(c.sum.skipped)/float64(b.N), "skipped/op")
		b.ReportMetric(float64(c.sum.flows.Len()), "tracked")
	}
}

// BenchmarkMillionFlowsFeed is the summary on the capture path over a
// million distinct conversations: the heap it holds stays at the table's
// fixed size, whatever comes.
func BenchmarkMillionFlowsFeed(b *testing.B) {
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := newSummarizer()
		data := udpFrame(64, 4000, 9)
		p := &rawcap.Packet{Data: data, Length: len(data), Type: rawcap.PacketHost}
		for j := 0; j < 1_000_000; j++ {
			binary.BigEndian.PutUint32(data[30:], uint32(j))
			s.feed(p, pcapng.DirectionInbound)
		}
		s.finish()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "MB-heap")
		b.ReportMetric(float64(s.flows.Len()), "tracked")
		b.ReportMetric(float64(s.flows.Untracked()), "untracked")
		runtime.KeepAlive(s)
	}
}
