package rawcap

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Offsets in a TPACKET_V3 block (struct tpacket_block_desc with its
// tpacket_hdr_v1), a packet header (struct tpacket3_hdr) and the
// sockaddr_ll that follows it. layout_linux_test.go checks them against
// golang.org/x/sys/unix's definitions of the kernel's structs.
const (
	bdBlockStatus   = 8
	bdNumPkts       = 12
	bdOffFirstPkt   = 16
	bdBlkLen        = 20
	blockHeaderLen  = 48
	hdrNextOffset   = 0
	hdrSec          = 4
	hdrNsec         = 8
	hdrSnaplen      = 12
	hdrLen          = 16
	hdrStatus       = 20
	hdrMac          = 24
	hdrVlanTCI      = 32
	hdrVlanTPID     = 36
	tpacket3HdrLen  = 48
	sllOff          = tpacket3HdrLen // TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
	sllIfindex      = sllOff + 4
	sllPkttype      = sllOff + 10
	sllLen          = 20
	hdrsLen         = sllOff + sllLen // the packet header and its sockaddr_ll
	statusVlanValid = 0x10            // TP_STATUS_VLAN_VALID
	statusTPIDValid = 0x40            // TP_STATUS_VLAN_TPID_VALID
	etherTypeVLAN   = 0x8100
)

var ne = binary.NativeEndian

// errCorrupt reports a block whose headers point outside it.
var errCorrupt = errors.New("rawcap: corrupt ring block")

// corrupt says where a block stopped making sense: the details are for a
// bug report, the error for errors.Is.
func corrupt(i, n uint32, off uint64, what string) error {
	return fmt.Errorf("%w: packet %d of %d at offset %d: %s", errCorrupt, i, n, off, what)
}

// walker turns the packets of a block into Packets. It owns a scratch
// buffer for re-inserting VLAN tags, so walking allocates nothing.
type walker struct {
	snapLen int
	scratch []byte
	pkt     Packet
}

// walk hands every packet of block to fn, never reading outside block. It
// stops at the first error from fn, or with errCorrupt at a header that
// points out of range.
func (w *walker) walk(block []byte, numPkts uint32, fn func(*Packet) error) error {
	if len(block) < blockHeaderLen {
		return errCorrupt
	}
	off := uint64(ne.Uint32(block[bdOffFirstPkt:]))
	for i := uint32(0); i < numPkts; i++ {
		if off < blockHeaderLen || off+hdrsLen > uint64(len(block)) {
			return corrupt(i, numPkts, off, "header out of the block")
		}
		// One bounds check for the headers: the fields below are read
		// at constant offsets of an array.
		h := (*[hdrsLen]byte)(block[off : off+hdrsLen])
		mac := uint64(ne.Uint16(h[hdrMac:]))
		snap := uint64(ne.Uint32(h[hdrSnaplen:]))
		if mac < hdrsLen || off+mac+snap > uint64(len(block)) {
			return corrupt(i, numPkts, off, fmt.Sprintf("data at %d+%d", mac, snap))
		}
		data := block[off+mac : off+mac+snap]
		status := ne.Uint32(h[hdrStatus:])
		w.pkt.Length = int(ne.Uint32(h[hdrLen:]))
		w.pkt.InRing = true
		if status&statusVlanValid != 0 && len(data) >= 12 {
			data = w.untag(h, data)
		}
		if w.snapLen > 0 && len(data) > w.snapLen {
			data = data[:w.snapLen]
		}
		w.pkt.Data = data
		w.pkt.Timestamp = int64(ne.Uint32(h[hdrSec:]))*1e9 + int64(ne.Uint32(h[hdrNsec:]))
		w.pkt.IfIndex = int(int32(ne.Uint32(h[sllIfindex:])))
		w.pkt.Type = PacketType(h[sllPkttype])
		if err := fn(&w.pkt); err != nil {
			return err
		}
		next := uint64(ne.Uint32(h[hdrNextOffset:]))
		if next == 0 {
			if i+1 < numPkts {
				return corrupt(i, numPkts, off, "no next packet")
			}
			break
		}
		off += next
	}
	return nil
}

// untag returns data, a packet whose VLAN tag the kernel stripped into
// the headers h, with the tag put back, in the scratch buffer; it counts
// the tag in the packet's length.
func (w *walker) untag(h *[hdrsLen]byte, data []byte) []byte {
	tpid := uint16(etherTypeVLAN)
	if ne.Uint32(h[hdrStatus:])&statusTPIDValid != 0 {
		tpid = ne.Uint16(h[hdrVlanTPID:])
	}
	tci := uint16(ne.Uint32(h[hdrVlanTCI:]))
	n := len(data) + 4
	if cap(w.scratch) < n {
		w.scratch = make([]byte, n, max(n, 64<<10))
	}
	s := w.scratch[:n]
	copy(s, data[:12])
	binary.BigEndian.PutUint16(s[12:], tpid)
	binary.BigEndian.PutUint16(s[14:], tci)
	copy(s[16:], data[12:])
	w.pkt.Length += 4
	w.pkt.InRing = false
	return s
}
