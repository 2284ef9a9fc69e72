package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nsntrace/nsntrace/internal/summary"
	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
)

// The summary costs the capture path little: every packet is accounted in
// line in a fixed-size conversation table (summary.Flows: headers read at
// fixed offsets, no allocation, no lock), and only the few packets that can
// carry a name (DNS, the first payload segments a program sends on a TCP
// connection) are copied into batches for a decoder goroutine. When the
// decoder falls behind and no batch is free, those packets are left out of
// the names (and counted), never out of the counts or the capture file.
const (
	sumBatches   = 8
	sumBatchSize = 256 << 10 // a name packet is cut to this; DNS messages end at 64 KiB
	sumBatchPkts = 1024
)

type sumRec struct {
	off, n   int
	outbound bool
}

type sumBatch struct {
	buf  []byte
	recs []sumRec
	// visit, if set, is run by the decoder once it decoded the batch and
	// all before it (see withNames).
	visit func(*summary.Names)
}

type summarizer struct {
	flows *summary.Flows // the capture goroutine's
	// loop, if set, counts the conversations on the program's lo; the
	// capture goroutine's too.
	loop  *summary.Loopback
	names *summary.Names // the decoder goroutine's until finish
	ch    chan *sumBatch
	free  chan *sumBatch
	cur   *sumBatch
	// skipped counts name packets left out; the capture goroutine's,
	// read after finish.
	skipped uint64
	done    chan struct{}
}

func newSummarizer() *summarizer {
	s := &summarizer{
		flows: summary.NewFlows(nil),
		names: summary.NewNames(),
		ch:    make(chan *sumBatch, sumBatches),
		free:  make(chan *sumBatch, sumBatches),
		done:  make(chan struct{}),
	}
	for i := 0; i < sumBatches; i++ {
		s.free <- &sumBatch{buf: make([]byte, 0, sumBatchSize), recs: make([]sumRec, 0, sumBatchPkts)}
	}
	go func() {
		defer close(s.done)
		for b := range s.ch {
			for _, r := range b.recs {
				s.names.Decode(b.buf[r.off:r.off+r.n], r.outbound)
			}
			if b.visit != nil {
				b.visit(s.names)
			}
			b.buf, b.recs, b.visit = b.buf[:0], b.recs[:0], nil
			s.free <- b
		}
	}()
	return s
}

// feed accounts a packet and, if it may carry a name, copies it for the
// decoder. It neither blocks nor allocates.
func (s *summarizer) feed(p *rawcap.Packet, dir pcapng.Direction) {
	out := dir == pcapng.DirectionOutbound
	n := s.flows.Account(p.Data, p.Length, p.Timestamp, out)
	if n == 0 {
		return
	}
	n = min(n, sumBatchSize)
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
			s.skipped++
			return
		}
	}
	b.recs = append(b.recs, sumRec{off: len(b.buf), n: n, outbound: out})
	b.buf = append(b.buf, p.Data[:n]...)
}

// finish hands over the last batch and waits for the decoder to catch up;
// after it the tables are the caller's.
func (s *summarizer) finish() {
	if s.cur != nil {
		s.ch <- s.cur
		s.cur = nil
	}
	close(s.ch)
	<-s.done
}

// addNames records the learned names in the capture file (NRB), so that
// Wireshark shows them without lookups; after finish.
func (s *summarizer) addNames(w pcapng.Writer) error { return addNames(w, s.names) }

func addNames(w pcapng.Writer, names *summary.Names) error {
	for addr, ns := range names.Names() {
		if err := w.AddNames(addr, ns...); err != nil {
			return err
		}
	}
	return nil
}

// addNamesSoFar is addNames while the capture runs, from the capture
// goroutine (a file of a rotating capture completed): the names belong
// to the decoder goroutine then, so the decoder writes them, once it has
// decoded every packet fed so far, while the capture goroutine waits.
func (s *summarizer) addNamesSoFar(w pcapng.Writer) error {
	if s.cur != nil {
		s.ch <- s.cur // has room: there are only sumBatches batches
		s.cur = nil
	}
	b := <-s.free // the decoder frees one soon
	errc := make(chan error, 1)
	b.visit = func(names *summary.Names) { errc <- addNames(w, names) }
	s.ch <- b
	return <-errc
}

// fullList says where every row of the summary table is, for its
// "... and N more" lines.
func fullList(summaryFile string) string {
	switch summaryFile {
	case "":
		return "--summary FILE lists them all"
	case "-":
		return "the JSON on standard output lists them all"
	}
	return summaryFile + " lists them all"
}

// report prints the table (unless quiet) and writes the JSON file,
// which belongs to owner (if not nil and it is a regular file).
// eg, if set, gives the egress policy's violations. It returns the
// report.
func (s *summarizer) report(o *options, rep *reporter, stdout io.Writer, owner *fileOwner, m summary.Meta, eg *egress) (*summary.Report, error) {
	m.NamePacketsSkipped = s.skipped
	m.SnapLen = o.snapLen
	r := summary.NewReport(m, s.flows, s.names)
	if s.loop != nil {
		r.AddLoopback(s.loop)
	}
	if eg != nil {
		// Each with the name looked up for its address before it, if any.
		r.Violations = eg.violations()
	}
	return r, s.writeReport(o, rep, stdout, owner, r)
}

func (s *summarizer) writeReport(o *options, rep *reporter, stdout io.Writer, owner *fileOwner, r *summary.Report) error {
	if !o.quiet {
		var b strings.Builder
		r.WriteText(&b, fullList(o.summary))
		for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
			rep.infof("%s", line)
		}
		if len(o.program) > 0 && !o.tlsKeys && s.names.TLSSeen() {
			rep.infof("The program spoke TLS: --tls-keys would put its keys into the file, for Wireshark to decrypt it.")
		}
		if n := s.skipped; n > 0 {
			rep.infof("(%s that might have named a remote address not decoded: the decoder fell behind; the capture file has them)", plural(n, "packet", "packets"))
		}
	}
	if o.summary == "" {
		return nil
	}
	if o.summary == "-" {
		return r.WriteJSON(stdout)
	}
	f, err := os.Create(o.summary)
	if err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	if err := owner.give(f); err != nil {
		f.Close()
		return fmt.Errorf("write summary: %w", err)
	}
	if err := r.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("write summary %s: %w", o.summary, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write summary %s: %w", o.summary, err)
	}
	return nil
}
