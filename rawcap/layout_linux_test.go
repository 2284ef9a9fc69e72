package rawcap

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestLayoutLinux checks the offsets walk.go uses against x/sys/unix's
// generated definitions of the kernel's structs.
func TestLayoutLinux(t *testing.T) {
	var h unix.Tpacket3Hdr
	var bd unix.TpacketBlockDesc
	var v1 unix.TpacketHdrV1
	var sll unix.RawSockaddrLinklayer
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof tpacket3_hdr", unix.SizeofTpacket3Hdr, tpacket3HdrLen},
		{"tp_next_offset", unsafe.Offsetof(h.Next_offset), hdrNextOffset},
		{"tp_sec", unsafe.Offsetof(h.Sec), hdrSec},
		{"tp_nsec", unsafe.Offsetof(h.Nsec), hdrNsec},
		{"tp_snaplen", unsafe.Offsetof(h.Snaplen), hdrSnaplen},
		{"tp_len", unsafe.Offsetof(h.Len), hdrLen},
		{"tp_status", unsafe.Offsetof(h.Status), hdrStatus},
		{"tp_mac", unsafe.Offsetof(h.Mac), hdrMac},
		{"tp_vlan_tci", unsafe.Offsetof(h.Hv1) + unsafe.Offsetof(h.Hv1.Vlan_tci), hdrVlanTCI},
		{"tp_vlan_tpid", unsafe.Offsetof(h.Hv1) + unsafe.Offsetof(h.Hv1.Vlan_tpid), hdrVlanTPID},
		{"block hdr", unsafe.Offsetof(bd.Hdr), 8},
		{"block_status", unsafe.Offsetof(bd.Hdr) + unsafe.Offsetof(v1.Block_status), bdBlockStatus},
		{"num_pkts", unsafe.Offsetof(bd.Hdr) + unsafe.Offsetof(v1.Num_pkts), bdNumPkts},
		{"offset_to_first_pkt", unsafe.Offsetof(bd.Hdr) + unsafe.Offsetof(v1.Offset_to_first_pkt), bdOffFirstPkt},
		{"blk_len", unsafe.Offsetof(bd.Hdr) + unsafe.Offsetof(v1.Blk_len), bdBlkLen},
		{"sizeof tpacket_block_desc", unsafe.Sizeof(bd), blockHeaderLen},
		{"sll_ifindex", sllOff + unsafe.Offsetof(sll.Ifindex), sllIfindex},
		{"sll_pkttype", sllOff + unsafe.Offsetof(sll.Pkttype), sllPkttype},
		{"sizeof sockaddr_ll", unix.SizeofSockaddrLinklayer, sllLen},
		{"TPACKET_ALIGN(tpacket3_hdr)", (unix.SizeofTpacket3Hdr + unix.TPACKET_ALIGNMENT - 1) &^ (unix.TPACKET_ALIGNMENT - 1), sllOff},
		{"TP_STATUS_VLAN_VALID", unix.TP_STATUS_VLAN_VALID, statusVlanValid},
		{"TP_STATUS_VLAN_TPID_VALID", unix.TP_STATUS_VLAN_TPID_VALID, statusTPIDValid},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}
