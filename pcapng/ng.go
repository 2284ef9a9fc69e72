package pcapng

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
)

// Block types and option codes of the pcapng specification
// (draft-ietf-opsawg-pcapng).
const (
	blockSHB = 0x0a0d0d0a
	blockIDB = 1
	blockNRB = 4
	blockISB = 5
	blockEPB = 6
	blockDSB = 0x0a

	byteOrderMagic = 0x1a2b3c4d

	optEndOfOpt = 0
	optComment  = 1

	optSHBHardware = 2
	optSHBOS       = 3
	optSHBUserAppl = 4

	optIfName        = 2
	optIfDescription = 3
	optIfTsresol     = 9
	optIfFilter      = 11
	optIfOS          = 12

	optEPBFlags     = 2
	optEPBDropCount = 4

	optISBStartTime    = 2
	optISBEndTime      = 3
	optISBIfRecv       = 4
	optISBIfDrop       = 5
	optISBFilterAccept = 6
	optISBOSDrop       = 7
	optISBUsrDeliv     = 8

	nrbRecordEnd  = 0
	nrbRecordIPv4 = 1
	nrbRecordIPv6 = 2

	// tsresolNano is if_tsresol for 10^-9 seconds.
	tsresolNano = 9
	// nrbBatch is the size at which pending name records are written
	// without waiting for the next packet.
	nrbBatch = 64 << 10
)

var le = binary.LittleEndian

// pad4 rounds n up to a multiple of 4, the alignment of every pcapng field.
func pad4(n int) int { return (n + 3) &^ 3 }

type ngWriter struct {
	bufWriter
	snaplens  []uint32 // per interface id
	delivered []uint64 // packets written per interface id, for isb_usrdeliv
	nrb       []byte   // pending name records
	scratch   []byte   // metadata blocks are built here
}

var _ Writer = (*ngWriter)(nil)

func newNgWriter(w io.Writer, cfg *Config, size int) (*ngWriter, error) {
	nw := &ngWriter{bufWriter: newBufWriter(w, size, ngBlocks)}
	b := nw.startBlock(blockSHB)
	b = le.AppendUint32(b, byteOrderMagic)
	b = le.AppendUint16(b, 1)          // major version
	b = le.AppendUint16(b, 0)          // minor version
	b = le.AppendUint64(b, ^uint64(0)) // section length: not given
	fixed := len(b)
	var err error
	for _, c := range cfg.Comments {
		if b, err = appendStringOpt(b, optComment, "section comment", c); err != nil {
			return nil, fmt.Errorf("create capture writer: %w", err)
		}
	}
	for _, o := range []struct {
		code       uint16
		what, text string
	}{
		{optSHBHardware, "shb_hardware", cfg.Hardware},
		{optSHBOS, "shb_os", cfg.OS},
		{optSHBUserAppl, "shb_userappl", cfg.UserAppl},
	} {
		if b, err = appendStringOpt(b, o.code, o.what, o.text); err != nil {
			return nil, fmt.Errorf("create capture writer: %w", err)
		}
	}
	b = endOptions(b, fixed)
	if err := nw.endBlock(b, "section header"); err != nil {
		return nil, fmt.Errorf("create capture writer: %w", err)
	}
	return nw, nil
}

// startBlock begins a metadata block in the scratch buffer; endBlock
// finishes and queues it.
func (w *ngWriter) startBlock(typ uint32) []byte {
	b := le.AppendUint32(w.scratch[:0], typ)
	return le.AppendUint32(b, 0) // total length, set by endBlock
}

// endBlock sets both length fields of the block built in b and queues it.
// A block larger than MaxBlockSize is refused before anything is written.
func (w *ngWriter) endBlock(b []byte, what string) error {
	b = le.AppendUint32(b, 0) // room for the trailing length
	total := len(b)
	w.scratch = b
	if total > MaxBlockSize {
		return fmt.Errorf("%s block of %d bytes exceeds %d: %w", what, total, MaxBlockSize, ErrTooLong)
	}
	le.PutUint32(b[4:], uint32(total))
	le.PutUint32(b[total-4:], uint32(total))
	return w.write(b, true)
}

// appendOptHeader appends an option header for a value of n bytes.
func appendOptHeader(b []byte, code uint16, n int) []byte {
	b = le.AppendUint16(b, code)
	return le.AppendUint16(b, uint16(n))
}

// appendPad appends the zero bytes that align a value of n bytes.
func appendPad(b []byte, n int) []byte {
	for i := n; i < pad4(n); i++ {
		b = append(b, 0)
	}
	return b
}

// appendStringOpt appends a UTF-8 string option; an empty string is left
// out, a string longer than MaxOptionLen is refused.
func appendStringOpt(b []byte, code uint16, what, s string) ([]byte, error) {
	if s == "" {
		return b, nil
	}
	if len(s) > MaxOptionLen {
		return b, fmt.Errorf("%s of %d bytes exceeds %d: %w", what, len(s), MaxOptionLen, ErrTooLong)
	}
	b = appendOptHeader(b, code, len(s))
	b = append(b, s...)
	return appendPad(b, len(s)), nil
}

// appendUint64Opt appends a 64-bit option.
func appendUint64Opt(b []byte, code uint16, v uint64) []byte {
	b = appendOptHeader(b, code, 8)
	return le.AppendUint64(b, v)
}

// appendTimeOpt appends a timestamp option the way pcapng stores them: the
// high 32 bits first, each half in the section's byte order.
func appendTimeOpt(b []byte, code uint16, ns int64) []byte {
	b = appendOptHeader(b, code, 8)
	b = le.AppendUint32(b, uint32(uint64(ns)>>32))
	return le.AppendUint32(b, uint32(ns))
}

// endOptions appends opt_endofopt when b holds options after the block's
// fixed part, which ends at fixedEnd.
func endOptions(b []byte, fixedEnd int) []byte {
	if len(b) > fixedEnd {
		b = appendOptHeader(b, optEndOfOpt, 0)
	}
	return b
}

// AddInterface writes an Interface Description Block.
func (w *ngWriter) AddInterface(ifc Interface) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	snaplen, err := snapLen(ifc)
	if err != nil {
		return 0, err
	}
	ifc.SnapLen = snaplen
	b := w.startBlock(blockIDB)
	b = le.AppendUint16(b, uint16(ifc.LinkType))
	b = le.AppendUint16(b, 0) // reserved
	b = le.AppendUint32(b, ifc.SnapLen)
	fixed := len(b)
	for _, o := range []struct {
		code       uint16
		what, text string
	}{
		{optIfName, "if_name", ifc.Name},
		{optIfDescription, "if_description", ifc.Description},
		{optIfOS, "if_os", ifc.OS},
	} {
		if b, err = appendStringOpt(b, o.code, o.what, o.text); err != nil {
			return 0, fmt.Errorf("add interface: %w", err)
		}
	}
	if ifc.Filter != "" {
		// if_filter: a type byte (0: libpcap filter string), then the
		// expression.
		n := 1 + len(ifc.Filter)
		if n > MaxOptionLen {
			return 0, fmt.Errorf("add interface: if_filter of %d bytes exceeds %d: %w", n, MaxOptionLen, ErrTooLong)
		}
		b = appendOptHeader(b, optIfFilter, n)
		b = append(b, 0)
		b = append(b, ifc.Filter...)
		b = appendPad(b, n)
	}
	b = appendOptHeader(b, optIfTsresol, 1)
	b = append(b, tsresolNano, 0, 0, 0)
	b = endOptions(b, fixed)
	if err := w.endBlock(b, "interface description"); err != nil {
		return 0, fmt.Errorf("add interface: %w", err)
	}
	w.snaplens = append(w.snaplens, ifc.SnapLen)
	w.delivered = append(w.delivered, 0)
	return len(w.snaplens) - 1, w.maybeFlush()
}

// WritePacket writes an Enhanced Packet Block. It does not allocate. Its
// fast path, for what nearly every captured packet is (valid, with
// direction flags and no other option, fitting in the buffer), tests once
// and fills the block in place.
func (w *ngWriter) WritePacket(p *Packet) error {
	n := len(p.Data)
	orig := p.Length
	if orig == 0 {
		orig = n
	}
	flags := uint32(p.Direction) | uint32(p.Reception)<<2
	dataEnd := epbHeaderLen + pad4(n)
	total := dataEnd + epbFlagsTail
	l := len(w.buf)
	if w.err != nil || w.bad(p, n, orig) || flags == 0 || p.Comment != "" || p.DropCount != 0 ||
		len(w.nrb) > 0 || total > cap(w.buf)-l {
		return w.writePacket(p, n, orig, flags)
	}
	b := w.buf[l : l+total : l+total]
	w.buf = w.buf[:l+total]
	// The padding first (copy overwrites all but the padding): with no
	// data this word is the original length, which the header then sets.
	le.PutUint32(b[dataEnd-4:], 0)
	putEPBHeader(b, p, total, n, orig)
	copy(b[epbHeaderLen:], p.Data)
	o := b[dataEnd:]
	le.PutUint32(o[0:], optEPBFlags|4<<16) // code, length 4
	le.PutUint32(o[4:], flags)
	le.PutUint32(o[8:], 0) // opt_endofopt
	le.PutUint32(o[12:], uint32(total))
	w.delivered[p.Interface]++
	if w.full() {
		return w.flush(true)
	}
	return nil
}

// epbFlagsTail is what follows the data of a block whose only option is
// epb_flags: that option, opt_endofopt and the trailing length.
const epbFlagsTail = 8 + 4 + 4

// writePacket is WritePacket for every other case: an invalid packet, no
// direction, other options, pending names, or a block that does not fit.
func (w *ngWriter) writePacket(p *Packet, n, orig int, flags uint32) error {
	if w.err != nil {
		return w.err
	}
	if w.bad(p, n, orig) {
		return w.invalidPacket(p)
	}
	if len(w.nrb) > 0 {
		if err := w.writeNRB(); err != nil {
			return err
		}
	}
	opts := epbOptionsLen(p, flags)
	dataEnd := epbHeaderLen + pad4(n)
	total := dataEnd + opts + 4
	b := w.grow(total)
	if b == nil {
		// Only with a snap length above the buffer's slack.
		return w.writeLargeEPB(p, uint32(orig), flags, total)
	}
	putEPBHeader(b, p, total, n, orig)
	if n&3 != 0 {
		le.PutUint32(b[dataEnd-4:], 0) // zero the padding; copy overwrites the rest
	}
	copy(b[epbHeaderLen:], p.Data)
	if opts > 0 {
		putEPBOptions(b[dataEnd:total-4], p, flags)
	}
	le.PutUint32(b[total-4:], uint32(total))
	w.delivered[p.Interface]++
	if w.full() {
		return w.flush(true)
	}
	return nil
}

// epbHeaderLen is the fixed part of an Enhanced Packet Block before the
// packet data: block type and length, interface id, timestamp (high and
// low), captured and original length; 4 bytes each.
const epbHeaderLen = 28

// putEPBHeader fills the first epbHeaderLen bytes of an Enhanced Packet
// Block.
func putEPBHeader(b []byte, p *Packet, total, n, orig int) {
	ts := uint64(p.Timestamp)
	_ = b[epbHeaderLen-1]
	le.PutUint32(b[0:], blockEPB)
	le.PutUint32(b[4:], uint32(total))
	le.PutUint32(b[8:], uint32(p.Interface))
	le.PutUint32(b[12:], uint32(ts>>32))
	le.PutUint32(b[16:], uint32(ts))
	le.PutUint32(b[20:], uint32(n))
	le.PutUint32(b[24:], uint32(orig))
}

// bad is WritePacket's one cheap test of a packet; invalidPacket says what
// is wrong.
func (w *ngWriter) bad(p *Packet, n, orig int) bool {
	return uint(p.Interface) >= uint(len(w.snaplens)) || uint64(n) > uint64(w.snaplens[p.Interface]) ||
		orig < n || uint64(orig) > 0xffffffff || p.Timestamp < 0 ||
		p.Direction > DirectionOutbound || p.Reception > ReceptionPromiscuous || len(p.Comment) > MaxOptionLen
}

// WritePacketRef writes an Enhanced Packet Block whose data, for a large
// packet, stays where the caller has it until the next Release, Flush or
// Close: the buffer holds the block's header and tail around a reference.
func (w *ngWriter) WritePacketRef(p *Packet) error {
	n := len(p.Data)
	if n < refMin {
		return w.WritePacket(p)
	}
	if w.err != nil {
		return w.err
	}
	orig := p.Length
	if orig == 0 {
		orig = n
	}
	if w.bad(p, n, orig) {
		return w.invalidPacket(p)
	}
	if len(w.nrb) > 0 {
		if err := w.writeNRB(); err != nil {
			return err
		}
	}
	flags := uint32(p.Direction) | uint32(p.Reception)<<2
	opts := epbOptionsLen(p, flags)
	dataEnd := epbHeaderLen + pad4(n)
	total := dataEnd + opts + 4
	// Both pieces fit: the buffer is below its limit between blocks, and
	// the tail (padding, options, length) is smaller than the slack.
	putEPBHeader(w.grow(epbHeaderLen), p, total, n, orig)
	w.writeRef(p.Data)
	t := w.grow(total - epbHeaderLen - n)
	pad := pad4(n) - n
	for i := range pad {
		t[i] = 0
	}
	if opts > 0 {
		putEPBOptions(t[pad:len(t)-4], p, flags)
	}
	le.PutUint32(t[len(t)-4:], uint32(total))
	w.delivered[p.Interface]++
	return w.maybeFlush()
}

// invalidPacket returns the error for a packet WritePacket refused.
func (w *ngWriter) invalidPacket(p *Packet) error {
	if _, err := checkPacket(p, w.snaplens); err != nil {
		return err
	}
	if p.Direction > DirectionOutbound || p.Reception > ReceptionPromiscuous {
		return fmt.Errorf("write packet: direction %d, reception %d: %w", p.Direction, p.Reception, os.ErrInvalid)
	}
	return fmt.Errorf("write packet: comment of %d bytes exceeds %d: %w", len(p.Comment), MaxOptionLen, ErrTooLong)
}

// epbOptionsLen returns the size of the packet's options, opt_endofopt
// included.
func epbOptionsLen(p *Packet, flags uint32) int {
	opts := 0
	if flags != 0 {
		opts += 8
	}
	if p.Comment != "" {
		opts += 4 + pad4(len(p.Comment))
	}
	if p.DropCount != 0 {
		opts += 12
	}
	if opts != 0 {
		opts += 4
	}
	return opts
}

// putEPBOptions fills o, sized exactly by WritePacket, with the packet's
// options and opt_endofopt.
func putEPBOptions(o []byte, p *Packet, flags uint32) {
	i := 0
	if flags != 0 {
		le.PutUint16(o[i:], optEPBFlags)
		le.PutUint16(o[i+2:], 4)
		le.PutUint32(o[i+4:], flags)
		i += 8
	}
	if c := p.Comment; c != "" {
		le.PutUint16(o[i:], optComment)
		le.PutUint16(o[i+2:], uint16(len(c)))
		end := i + 4 + pad4(len(c))
		le.PutUint32(o[end-4:], 0)
		copy(o[i+4:], c)
		i = end
	}
	if p.DropCount != 0 {
		le.PutUint16(o[i:], optEPBDropCount)
		le.PutUint16(o[i+2:], 8)
		le.PutUint64(o[i+4:], p.DropCount)
		i += 12
	}
	le.PutUint32(o[i:], 0) // opt_endofopt
}

// writeLargeEPB writes a packet block that does not fit in the buffer at
// once, streaming its data in full batches.
func (w *ngWriter) writeLargeEPB(p *Packet, orig, flags uint32, total int) error {
	var hdr [epbHeaderLen]byte
	putEPBHeader(hdr[:], p, total, len(p.Data), int(orig))
	if err := w.write(hdr[:], false); err != nil {
		return err
	}
	if err := w.write(p.Data, false); err != nil {
		return err
	}
	n := len(p.Data)
	tail := total - epbHeaderLen - n // padding, options, trailing length: < slack
	b := w.grow(tail)
	for i := range pad4(n) - n {
		b[i] = 0
	}
	if tail > pad4(n)-n+4 {
		putEPBOptions(b[pad4(n)-n:tail-4], p, flags)
	}
	le.PutUint32(b[tail-4:], uint32(total))
	w.delivered[p.Interface]++
	return w.maybeFlush()
}

// AddNames queues a Name Resolution Block record for addr. Records are
// batched and written before the next packet, statistics block, Flush or
// Close.
func (w *ngWriter) AddNames(addr netip.Addr, names ...string) error {
	if w.err != nil {
		return w.err
	}
	if !addr.IsValid() {
		return fmt.Errorf("add names: invalid address: %w", os.ErrInvalid)
	}
	addr = addr.Unmap().WithZone("")
	if len(names) == 0 {
		return fmt.Errorf("add names for %s: no name: %w", addr, os.ErrInvalid)
	}
	typ, n := uint16(nrbRecordIPv4), 4
	if addr.Is6() {
		typ, n = nrbRecordIPv6, 16
	}
	for _, name := range names {
		if name == "" || strings.IndexByte(name, 0) >= 0 {
			return fmt.Errorf("add names for %s: name %q is empty or holds a NUL byte: %w", addr, name, os.ErrInvalid)
		}
		n += len(name) + 1
	}
	if n > MaxOptionLen {
		return fmt.Errorf("add names for %s: record of %d bytes exceeds %d: %w", addr, n, MaxOptionLen, ErrTooLong)
	}
	b := appendOptHeader(w.nrb, typ, n)
	b = append(b, addr.AsSlice()...)
	for _, name := range names {
		b = append(b, name...)
		b = append(b, 0)
	}
	w.nrb = appendPad(b, n)
	if len(w.nrb) >= nrbBatch {
		return w.writeNRB()
	}
	return nil
}

// writeNRB writes the pending name records as one block.
func (w *ngWriter) writeNRB() error {
	b := w.startBlock(blockNRB)
	b = append(b, w.nrb...)
	b = appendOptHeader(b, nrbRecordEnd, 0)
	w.nrb = w.nrb[:0]
	if err := w.endBlock(b, "name resolution"); err != nil {
		return err
	}
	return w.maybeFlush()
}

// WriteSecrets writes a Decryption Secrets Block. Readers apply the
// secrets to the packets after it in the file, so it goes before the
// first packet they decrypt.
func (w *ngWriter) WriteSecrets(typ SecretsType, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(data) == 0 {
		return nil
	}
	if len(w.nrb) > 0 {
		if err := w.writeNRB(); err != nil {
			return err
		}
	}
	b := w.startBlock(blockDSB)
	b = le.AppendUint32(b, uint32(typ))
	b = le.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	b = appendPad(b, len(data))
	if err := w.endBlock(b, "decryption secrets"); err != nil {
		return err
	}
	return w.maybeFlush()
}

// WriteStats writes an Interface Statistics Block. Its timestamp is
// s.EndTime (or s.StartTime when EndTime is zero); isb_usrdeliv counts the
// packets written for the interface so far.
func (w *ngWriter) WriteStats(iface int, s Stats) error {
	if w.err != nil {
		return w.err
	}
	if uint(iface) >= uint(len(w.snaplens)) {
		return fmt.Errorf("write statistics: interface %d was not added: %w", iface, os.ErrInvalid)
	}
	if s.StartTime < 0 || s.EndTime < 0 {
		return fmt.Errorf("write statistics: time before 1970: %w", os.ErrInvalid)
	}
	if len(w.nrb) > 0 {
		if err := w.writeNRB(); err != nil {
			return err
		}
	}
	ts := s.EndTime
	if ts == 0 {
		ts = s.StartTime
	}
	b := w.startBlock(blockISB)
	b = le.AppendUint32(b, uint32(iface))
	b = le.AppendUint32(b, uint32(uint64(ts)>>32))
	b = le.AppendUint32(b, uint32(ts))
	if s.StartTime != 0 {
		b = appendTimeOpt(b, optISBStartTime, s.StartTime)
	}
	if s.EndTime != 0 {
		b = appendTimeOpt(b, optISBEndTime, s.EndTime)
	}
	if s.HasReceived {
		b = appendUint64Opt(b, optISBIfRecv, s.Received)
	}
	if s.HasIfDrop {
		b = appendUint64Opt(b, optISBIfDrop, s.IfDrop)
	}
	if s.HasFilterAccept {
		b = appendUint64Opt(b, optISBFilterAccept, s.FilterAccept)
	}
	if s.HasOSDrop {
		b = appendUint64Opt(b, optISBOSDrop, s.OSDrop)
	}
	b = appendUint64Opt(b, optISBUsrDeliv, w.delivered[iface])
	b = appendOptHeader(b, optEndOfOpt, 0)
	if err := w.endBlock(b, "interface statistics"); err != nil {
		return fmt.Errorf("write statistics: %w", err)
	}
	return w.maybeFlush()
}

// Flush writes the pending name records and hands everything to the
// underlying writer.
func (w *ngWriter) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.nrb) > 0 {
		if err := w.writeNRB(); err != nil {
			return err
		}
	}
	return w.flush(true)
}

// Close flushes and marks the writer closed.
func (w *ngWriter) Close() error {
	if w.closed {
		return w.closeErr
	}
	return w.close(w.Flush())
}
