package rawcap

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds every unsafe conversion and shared-memory atomic of the
// package.

// blockStatus returns the block_status word of the block at b, which the
// kernel and we hand back and forth.
func blockStatus(b []byte) *uint32 {
	// The block is in the mmapped ring, page aligned, so the word at
	// offset 8 is 4-byte aligned and lives as long as the mapping.
	return (*uint32)(unsafe.Pointer(&b[bdBlockStatus]))
}

// loadStatus reads block_status; the kernel writes it with smp_wmb after
// filling the block, so an atomic load orders our reads of the packets.
func loadStatus(b []byte) uint32 { return atomic.LoadUint32(blockStatus(b)) }

// loadNumPkts reads num_pkts of a block the kernel may still be filling.
func loadNumPkts(b []byte) uint32 {
	// Same alignment argument as blockStatus.
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[bdNumPkts])))
}

// releaseBlock gives a block back to the kernel. It zeroes num_pkts first
// (the kernel sets it anew when it opens the block), so that drain never
// mistakes a released block's stale count for packets of the open block.
func releaseBlock(b []byte) {
	// Same alignment argument as blockStatus.
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[bdNumPkts])), 0)
	atomic.StoreUint32(blockStatus(b), unix.TP_STATUS_KERNEL)
}

// setsockoptReq3 wraps setsockopt(PACKET_RX_RING) with a tpacket_req3.
func setsockoptReq3(fd int, req *unix.TpacketReq3) error {
	return unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, req)
}

// attachFilter wraps setsockopt(SO_ATTACH_FILTER).
func attachFilter(fd int, prog []unix.SockFilter) error {
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp)
}
