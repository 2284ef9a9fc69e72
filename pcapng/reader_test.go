package pcapng

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
)

// This file holds a small, strict pcapng reader written from the
// specification for the tests: it checks what gopacket's reader forgives
// (the trailing block length, zero padding, opt_endofopt placement, option
// area sizes) and exposes every option the writer produces.

type rOption struct {
	code uint16
	val  []byte
}

type rIface struct {
	linkType uint16
	snaplen  uint32
	opts     []rOption
}

type rPacket struct {
	iface           uint32
	ts              uint64
	caplen, origlen uint32
	data            []byte
	opts            []rOption
}

type rStats struct {
	iface uint32
	ts    uint64
	opts  []rOption
}

type rName struct {
	addr  netip.Addr
	names []string
}

type rFile struct {
	shbOpts []rOption
	ifaces  []rIface
	packets []rPacket
	stats   []rStats
	names   []rName
	// order lists the block types in file order.
	order []uint32
}

// errTruncated reports a file that ends inside a block.
var errTruncated = errors.New("file ends inside a block")

// parseNg parses a whole pcapng file. When it returns errTruncated, the
// returned file holds every complete block before the cut.
func parseNg(b []byte) (*rFile, error) {
	f := &rFile{}
	off := 0
	for off < len(b) {
		if len(b)-off < 12 {
			return f, fmt.Errorf("at %d: %w", off, errTruncated)
		}
		typ := le.Uint32(b[off:])
		total := int(le.Uint32(b[off+4:]))
		if total < 12 || total%4 != 0 {
			return f, fmt.Errorf("at %d: block length %d", off, total)
		}
		if total > len(b)-off {
			return f, fmt.Errorf("at %d: block of %d bytes, %d left: %w", off, total, len(b)-off, errTruncated)
		}
		if trail := int(le.Uint32(b[off+total-4:])); trail != total {
			return f, fmt.Errorf("at %d: trailing length %d != %d", off, trail, total)
		}
		if total > MaxBlockSize && typ != blockEPB {
			return f, fmt.Errorf("at %d: metadata block of %d bytes", off, total)
		}
		body := b[off+8 : off+total-4]
		if off == 0 && typ != blockSHB {
			return f, fmt.Errorf("first block is %#x, not a section header", typ)
		}
		if err := f.parseBlock(typ, body); err != nil {
			return f, fmt.Errorf("block %#x at %d: %w", typ, off, err)
		}
		f.order = append(f.order, typ)
		off += total
	}
	if len(f.order) == 0 {
		return f, errors.New("empty file")
	}
	return f, nil
}

func (f *rFile) parseBlock(typ uint32, body []byte) error {
	var err error
	switch typ {
	case blockSHB:
		if len(f.order) != 0 {
			return errors.New("second section header")
		}
		if len(body) < 16 {
			return errors.New("short section header")
		}
		if le.Uint32(body) != byteOrderMagic || le.Uint16(body[4:]) != 1 || le.Uint16(body[6:]) != 0 {
			return fmt.Errorf("bad magic or version % x", body[:8])
		}
		f.shbOpts, err = parseOptions(body[16:])
		return err
	case blockIDB:
		if len(body) < 8 {
			return errors.New("short interface block")
		}
		ifc := rIface{linkType: le.Uint16(body), snaplen: le.Uint32(body[4:])}
		if le.Uint16(body[2:]) != 0 {
			return errors.New("reserved field not zero")
		}
		if ifc.opts, err = parseOptions(body[8:]); err != nil {
			return err
		}
		if v, ok := opt(ifc.opts, optIfTsresol); !ok || len(v) != 1 || v[0] != tsresolNano {
			return fmt.Errorf("if_tsresol %v %v, want [9]", v, ok)
		}
		if v, ok := opt(ifc.opts, optIfFilter); ok && (len(v) < 1 || v[0] != 0) {
			return fmt.Errorf("if_filter % x", v)
		}
		f.ifaces = append(f.ifaces, ifc)
		return nil
	case blockEPB:
		if len(body) < 20 {
			return errors.New("short packet block")
		}
		p := rPacket{
			iface:   le.Uint32(body),
			ts:      uint64(le.Uint32(body[4:]))<<32 | uint64(le.Uint32(body[8:])),
			caplen:  le.Uint32(body[12:]),
			origlen: le.Uint32(body[16:]),
		}
		if int(p.iface) >= len(f.ifaces) {
			return fmt.Errorf("interface %d not described", p.iface)
		}
		if p.caplen > p.origlen || p.caplen > f.ifaces[p.iface].snaplen {
			return fmt.Errorf("caplen %d, origlen %d, snaplen %d", p.caplen, p.origlen, f.ifaces[p.iface].snaplen)
		}
		n := pad4(int(p.caplen))
		if n > len(body)-20 {
			return fmt.Errorf("caplen %d beyond the block", p.caplen)
		}
		p.data = body[20 : 20+int(p.caplen)]
		if !allZero(body[20+int(p.caplen) : 20+n]) {
			return errors.New("packet padding not zero")
		}
		if p.opts, err = parseOptions(body[20+n:]); err != nil {
			return err
		}
		if v, ok := opt(p.opts, optEPBFlags); ok && (len(v) != 4 || le.Uint32(v)&^0x1f != 0) {
			return fmt.Errorf("epb_flags % x", v)
		}
		f.packets = append(f.packets, p)
		return nil
	case blockISB:
		if len(body) < 12 {
			return errors.New("short statistics block")
		}
		s := rStats{iface: le.Uint32(body), ts: uint64(le.Uint32(body[4:]))<<32 | uint64(le.Uint32(body[8:]))}
		if int(s.iface) >= len(f.ifaces) {
			return fmt.Errorf("interface %d not described", s.iface)
		}
		if s.opts, err = parseOptions(body[12:]); err != nil {
			return err
		}
		f.stats = append(f.stats, s)
		return nil
	case blockNRB:
		return f.parseNames(body)
	case blockDSB:
		if len(body) < 8 || int(le.Uint32(body[4:])) > len(body)-8 || len(body)-8 != pad4(int(le.Uint32(body[4:]))) {
			return errors.New("bad decryption secrets block")
		}
		return nil
	}
	return fmt.Errorf("unexpected block type %#x", typ)
}

func (f *rFile) parseNames(b []byte) error {
	for {
		if len(b) < 4 {
			return errors.New("name records without nrb_record_end")
		}
		typ, n := le.Uint16(b), int(le.Uint16(b[2:]))
		b = b[4:]
		if typ == nrbRecordEnd {
			if n != 0 {
				return errors.New("nrb_record_end with a value")
			}
			opts, err := parseOptions(b)
			if err != nil || len(opts) != 0 {
				return fmt.Errorf("options after the records: %v %v", opts, err)
			}
			return nil
		}
		if pad4(n) > len(b) {
			return fmt.Errorf("record of %d bytes beyond the block", n)
		}
		v := b[:n]
		if !allZero(b[n:pad4(n)]) {
			return errors.New("record padding not zero")
		}
		b = b[pad4(n):]
		alen := map[uint16]int{nrbRecordIPv4: 4, nrbRecordIPv6: 16}[typ]
		if alen == 0 || n <= alen || v[n-1] != 0 {
			return fmt.Errorf("record type %d of %d bytes", typ, n)
		}
		addr, _ := netip.AddrFromSlice(v[:alen])
		r := rName{addr: addr}
		for _, name := range bytes.Split(v[alen:n-1], []byte{0}) {
			if len(name) == 0 {
				return errors.New("empty name")
			}
			r.names = append(r.names, string(name))
		}
		f.names = append(f.names, r)
	}
}

// parseOptions parses an option list that must fill b exactly: padded
// values with zero padding, opt_endofopt last and only when options exist.
func parseOptions(b []byte) ([]rOption, error) {
	var opts []rOption
	if len(b) == 0 {
		return nil, nil
	}
	for {
		if len(b) < 4 {
			return nil, fmt.Errorf("%d bytes left in the option list", len(b))
		}
		code, n := le.Uint16(b), int(le.Uint16(b[2:]))
		b = b[4:]
		if code == optEndOfOpt {
			if n != 0 || len(b) != 0 {
				return nil, fmt.Errorf("opt_endofopt of length %d with %d bytes after it", n, len(b))
			}
			if len(opts) == 0 {
				return nil, errors.New("opt_endofopt without options")
			}
			return opts, nil
		}
		if pad4(n) > len(b) {
			return nil, fmt.Errorf("option %d of %d bytes beyond the block", code, n)
		}
		if !allZero(b[n:pad4(n)]) {
			return nil, fmt.Errorf("option %d padding not zero", code)
		}
		opts = append(opts, rOption{code: code, val: b[:n]})
		b = b[pad4(n):]
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// opt returns the first value of an option.
func opt(opts []rOption, code uint16) ([]byte, bool) {
	for _, o := range opts {
		if o.code == code {
			return o.val, true
		}
	}
	return nil, false
}

// strOpts returns every value of an option as strings.
func strOpts(opts []rOption, code uint16) []string {
	var s []string
	for _, o := range opts {
		if o.code == code {
			s = append(s, string(o.val))
		}
	}
	return s
}
