package rawcap

import "testing"

// kernelFits says whether tpacket_rcv (net/packet/af_packet.c) stores a
// packet of snapLen bytes with a link header of maclen bytes in a block of
// blockSize bytes whole: macoff + snaplen <= max_frame_len, where
// max_frame_len = block size - BLK_PLUS_PRIV(0) (48) and macoff =
// TPACKET_ALIGN(TPACKET3_HDRLEN + max(maclen, 16)) - maclen, with
// TPACKET3_HDRLEN = TPACKET_ALIGN(sizeof(tpacket3_hdr)) + sizeof(sockaddr_ll)
// = 48 + 20. Derived from the kernel's arithmetic, not from frameOverhead.
func kernelFits(blockSize, snapLen, maclen int) bool {
	align := func(x int) int { return (x + 15) &^ 15 }
	macoff := align(48+20+max(maclen, 16)) - maclen
	return macoff+snapLen <= blockSize-48
}

func TestBlockSizeFor(t *testing.T) {
	for _, snap := range []int{1, 96, 1514, 8192, 65535, 65536, 200000, 262144} {
		b := BlockSizeFor(snap)
		if b&(b-1) != 0 || b < MinBlockSize {
			t.Errorf("BlockSizeFor(%d) = %d: not a power of two of at least %d", snap, b, MinBlockSize)
		}
		// Ethernet, one VLAN tag, two (QinQ): the kernel never clamps.
		for _, maclen := range []int{14, 18, 22} {
			if !kernelFits(b, snap, maclen) {
				t.Errorf("BlockSizeFor(%d) = %d: the kernel clamps a %d-byte packet with a %d-byte link header", snap, b, snap, maclen)
			}
		}
		if b > MinBlockSize && kernelFits(b/2, snap+frameOverhead, 22) {
			t.Errorf("BlockSizeFor(%d) = %d: half of it holds the packet too", snap, b)
		}
	}
	if got := (*Config)(nil).withDefaults().BlockSize; got != 512<<10 {
		t.Errorf("default block size %d, want 512 KiB (order 7) for the default snap length", got)
	}
}
