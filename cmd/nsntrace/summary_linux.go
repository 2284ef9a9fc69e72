//go:build linux

package main

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/nsntrace/nsntrace/internal/summary"
	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
)

// Summary decoding runs beside the writer: the capture path only copies
// the head of each packet into a batch, and hands full batches over
// without blocking. When the decoder falls behind and no batch is free,
// packets are left out of the summary (and counted), never out of the
// capture file.
const (
	sumBatches   = 16
	sumBatchSize = 1 << 20
	sumBatchPkts = 8192
	sumHead      = 2048 // headers, DNS messages, a ClientHello, HTTP headers
)

type sumRec struct {
	off, n   int
	length   int
	ts       int64
	outbound bool
}

type sumBatch struct {
	buf  []byte
	recs []sumRec
}

type summarizer struct {
	tr      *summary.Tracker
	ch      chan *sumBatch
	free    chan *sumBatch
	cur     *sumBatch
	skipped atomic.Uint64
	done    chan struct{}
}

func newSummarizer() *summarizer {
	s := &summarizer{
		tr:   summary.New(nil),
		ch:   make(chan *sumBatch, sumBatches),
		free: make(chan *sumBatch, sumBatches),
		done: make(chan struct{}),
	}
	for i := 0; i < sumBatches; i++ {
		s.free <- &sumBatch{buf: make([]byte, 0, sumBatchSize), recs: make([]sumRec, 0, sumBatchPkts)}
	}
	go func() {
		defer close(s.done)
		for b := range s.ch {
			for _, r := range b.recs {
				s.tr.Observe(b.buf[r.off:r.off+r.n], r.length, r.ts, r.outbound)
			}
			b.buf, b.recs = b.buf[:0], b.recs[:0]
			s.free <- b
		}
	}()
	return s
}

// feed copies the head of a packet for the decoder; it never blocks.
func (s *summarizer) feed(p *rawcap.Packet, dir pcapng.Direction) {
	n := min(len(p.Data), sumHead)
	b := s.cur
	if b != nil && (len(b.buf)+n > cap(b.buf) || len(b.recs) == cap(b.recs)) {
		s.ch <- b // has room: there are only sumBatches batches
		b, s.cur = nil, nil
	}
	if b == nil {
		select {
		case b = <-s.free:
			s.cur = b
		default:
			s.skipped.Add(1)
			return
		}
	}
	b.recs = append(b.recs, sumRec{off: len(b.buf), n: n, length: p.Length, ts: p.Timestamp, outbound: dir == pcapng.DirectionOutbound})
	b.buf = append(b.buf, p.Data[:n]...)
}

// finish hands over the last batch and waits for the decoder to catch up.
func (s *summarizer) finish() {
	if s.cur != nil {
		s.ch <- s.cur
		s.cur = nil
	}
	close(s.ch)
	<-s.done
}

// addNames records the learned names in the capture file (NRB), so that
// Wireshark shows them without lookups.
func (s *summarizer) addNames(w pcapng.Writer) error {
	for addr, names := range s.tr.Names() {
		if err := w.AddNames(addr, names...); err != nil {
			return err
		}
	}
	return nil
}

// report prints the table (unless quiet) and writes the JSON file.
func (s *summarizer) report(t *tracer, m summary.Meta) error {
	r := s.tr.Report(m)
	if !t.o.quiet {
		var b strings.Builder
		r.WriteText(&b)
		for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
			t.rep.infof("%s", line)
		}
		if n := s.skipped.Load(); n > 0 {
			t.rep.infof("(%s left out of this summary: the decoder fell behind; the capture file has them)", plural(n, "packet", "packets"))
		}
	}
	if t.o.summary == "" {
		return nil
	}
	if t.o.summary == "-" {
		return r.WriteJSON(t.stdout)
	}
	f, err := os.Create(t.o.summary)
	if err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	if err := r.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("write summary %s: %w", t.o.summary, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write summary %s: %w", t.o.summary, err)
	}
	return nil
}
