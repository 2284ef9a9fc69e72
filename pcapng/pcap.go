package pcapng

import (
	"fmt"
	"io"
	"net/netip"
	"os"
)

// magicNanoseconds is the classic pcap magic for nanosecond timestamps.
const magicNanoseconds = 0xa1b23c4d

// pcapWriter writes classic pcap: a file header naming the one link type
// and snap length, then a 16-byte record header per packet.
type pcapWriter struct {
	bufWriter
	snaplens []uint32 // the one interface, once added
}

var _ Writer = (*pcapWriter)(nil)

func newPcapWriter(w io.Writer, size int) *pcapWriter {
	return &pcapWriter{bufWriter: newBufWriter(w, size, pcapBlocks)}
}

// AddInterface writes the file header; classic pcap has room for one
// interface and none of its metadata but link type and snap length.
func (w *pcapWriter) AddInterface(ifc Interface) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if len(w.snaplens) > 0 {
		return 0, fmt.Errorf("add interface %q: classic pcap holds a single interface: %w", ifc.Name, os.ErrInvalid)
	}
	snaplen, err := snapLen(ifc)
	if err != nil {
		return 0, err
	}
	ifc.SnapLen = snaplen
	w.writeHeader(ifc.LinkType, ifc.SnapLen)
	w.snaplens = append(w.snaplens, ifc.SnapLen)
	return 0, w.maybeFlush()
}

func (w *pcapWriter) writeHeader(lt LinkType, snaplen uint32) {
	b := w.grow(24) // the buffer is empty: pcap writes nothing before
	le.PutUint32(b[0:], magicNanoseconds)
	le.PutUint16(b[4:], 2) // version 2.4
	le.PutUint16(b[6:], 4)
	le.PutUint32(b[8:], 0)  // thiszone
	le.PutUint32(b[12:], 0) // sigfigs
	le.PutUint32(b[16:], snaplen)
	le.PutUint32(b[20:], uint32(lt))
}

// WritePacket writes a packet record; comments, flags and drop counts have
// no place in classic pcap and are left out.
func (w *pcapWriter) WritePacket(p *Packet) error {
	if w.err != nil {
		return w.err
	}
	n := len(p.Data)
	orig := p.Length
	if orig == 0 {
		orig = n
	}
	sec := uint64(p.Timestamp) / 1e9
	if w.bad(p, n, orig, sec) {
		if _, err := checkPacket(p, w.snaplens); err != nil {
			return err
		}
		return fmt.Errorf("write packet: timestamp %d after 2106 does not fit classic pcap: %w", p.Timestamp, os.ErrInvalid)
	}
	nsec := uint64(p.Timestamp) % 1e9
	var hdr [16]byte
	le.PutUint32(hdr[0:], uint32(sec))
	le.PutUint32(hdr[4:], uint32(nsec))
	le.PutUint32(hdr[8:], uint32(n))
	le.PutUint32(hdr[12:], uint32(orig))
	b := w.grow(16 + n)
	if b == nil {
		// Only with a snap length above the buffer's slack.
		if err := w.write(hdr[:], false); err != nil {
			return err
		}
		if err := w.write(p.Data, true); err != nil {
			return err
		}
		return w.maybeFlush()
	}
	copy(b, hdr[:])
	copy(b[16:], p.Data)
	if w.full() {
		return w.flush(true)
	}
	return nil
}

// bad is the one cheap test of a packet record; checkPacket says what is
// wrong.
func (w *pcapWriter) bad(p *Packet, n, orig int, sec uint64) bool {
	return uint(p.Interface) >= uint(len(w.snaplens)) || uint64(n) > uint64(w.snaplens[p.Interface]) ||
		orig < n || uint64(orig) > 0xffffffff || p.Timestamp < 0 || sec > 0xffffffff
}

// WritePacketRef writes a packet record whose data, for a large packet,
// stays where the caller has it until the next Release, Flush or Close.
func (w *pcapWriter) WritePacketRef(p *Packet) error {
	n := len(p.Data)
	if n < refMin || w.err != nil {
		return w.WritePacket(p)
	}
	orig := p.Length
	if orig == 0 {
		orig = n
	}
	sec := uint64(p.Timestamp) / 1e9
	if w.bad(p, n, orig, sec) {
		return w.WritePacket(p) // says what is wrong
	}
	b := w.grow(16) // fits: the buffer is below its limit between records
	le.PutUint32(b[0:], uint32(sec))
	le.PutUint32(b[4:], uint32(uint64(p.Timestamp)%1e9))
	le.PutUint32(b[8:], uint32(n))
	le.PutUint32(b[12:], uint32(orig))
	w.writeRef(p.Data)
	return w.maybeFlush()
}

// AddNames does nothing: classic pcap has no name records.
func (w *pcapWriter) AddNames(addr netip.Addr, names ...string) error {
	return w.err
}

// WriteSecrets fails: classic pcap has no place for secrets.
func (w *pcapWriter) WriteSecrets(SecretsType, []byte) error {
	return fmt.Errorf("write decryption secrets: %w", ErrNoSecrets)
}

// WriteStats does nothing: classic pcap has no statistics.
func (w *pcapWriter) WriteStats(iface int, s Stats) error {
	if w.err != nil {
		return w.err
	}
	if uint(iface) >= uint(len(w.snaplens)) {
		return fmt.Errorf("write statistics: interface %d was not added: %w", iface, os.ErrInvalid)
	}
	return nil
}

// Flush hands everything written so far to the underlying writer.
func (w *pcapWriter) Flush() error { return w.flush(true) }

// Close flushes and marks the writer closed. A file without interface gets
// an Ethernet header, so that it is an empty capture rather than no
// capture at all.
func (w *pcapWriter) Close() error {
	if w.closed {
		return w.closeErr
	}
	if w.err == nil && len(w.snaplens) == 0 {
		w.writeHeader(LinkTypeEthernet, DefaultSnapLen)
	}
	return w.close(w.flush(true))
}
