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
	for _, snap := range []int{1, 96, 1514, 8192, 65535, 65536, 200000, 262144, 300000} {
		b := BlockSizeFor(snap)
		if b&(b-1) != 0 || b < MinBlockSize || b < snap {
			t.Errorf("BlockSizeFor(%d) = %d: not a power of two of at least %d and the snap length", snap, b, MinBlockSize)
		}
		// Ethernet, one VLAN tag, two (QinQ): every packet of up to
		// frameOverhead bytes short of the snap length is kept whole.
		for _, maclen := range []int{14, 18, 22} {
			if whole := min(snap, b-frameOverhead); !kernelFits(b, whole, maclen) {
				t.Errorf("BlockSizeFor(%d) = %d: the kernel clamps a %d-byte packet with a %d-byte link header", snap, b, whole, maclen)
			}
		}
		if b > MinBlockSize && b/2 >= snap {
			t.Errorf("BlockSizeFor(%d) = %d: half of it holds the snap length too", snap, b)
		}
	}
	if got := (*Config)(nil).withDefaults().BlockSize; got != 256<<10 {
		t.Errorf("default block size %d, want 256 KiB (order 6, libpcap's) for the default snap length", got)
	}
}
