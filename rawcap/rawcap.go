package rawcap

import (
	"time"

	"golang.org/x/net/bpf"

	"github.com/nsntrace/nsntrace/pcapng"
)

// Defaults used when a Config field is zero. The default block size
// depends on the snap length (BlockSizeFor).
const (
	DefaultRingSize     = 64 << 20
	DefaultBlockTimeout = 100 * time.Millisecond
)

// MinBlockSize is the smallest block BlockSizeFor picks: a block is handed
// over to the reader when full, and smaller blocks would mean more
// hand-overs for a burst of small packets.
const MinBlockSize = 256 << 10

// frameOverhead bounds what a block holds beside one packet's bytes: the
// block descriptor (BLK_PLUS_PRIV with no private area: 48 bytes), and
// before the packet the tpacket3_hdr and sockaddr_ll (TPACKET3_HDRLEN, 68)
// aligned to 16 with room for the link header and a put-back VLAN tag.
// tpacket_rcv clamps a packet whose macoff+snaplen exceeds the block's
// max_frame_len to that length: it keeps the packet's first bytes, and
// says how long it was.
const frameOverhead = 512

// BlockSizeFor is the default block size for snap length snapLen: the
// smallest power of two of at least snapLen bytes, and at least
// MinBlockSize: 256 KiB (order 6) for every snap length up to the
// default, 262144. As libpcap's (tp_frame_size = MAXIMUM_SNAPLEN, the
// block the smallest power of two that holds it). Such a block keeps
// every packet of up to snapLen-frameOverhead bytes whole; a larger one
// (on a link carrying GSO or GRO packets over 256 KiB, BIG TCP) is kept
// up to at most frameOverhead bytes short of snapLen.
//
// Not larger: the kernel allocates each block as one run of physically
// contiguous, zeroed pages (alloc_pg_vec, __GFP_ZERO), and a higher order
// is both harder to find in fragmented memory and, on a VM with free page
// reporting, more likely to be memory the host must supply again. On the
// development VM, a 64 MiB ring set up after 3 s idle cost 45 ms of CPU in
// 512 KiB blocks (order 7), 20 ms in 256 KiB blocks (tcpdump's the same:
// 20 ms), and 170-300 ms in 1 MiB blocks. What larger blocks would save in
// the steady state, fewer wake-ups, the reader's pacing saves instead
// (pace.go).
func BlockSizeFor(snapLen int) int {
	b := MinBlockSize
	for b < snapLen {
		b <<= 1
	}
	return b
}

// PacketType says how a packet met the interface (sll_pkttype).
type PacketType uint8

// Packet types, as in linux/if_packet.h.
const (
	PacketHost      PacketType = 0 // addressed to this host
	PacketBroadcast PacketType = 1 // link-level broadcast
	PacketMulticast PacketType = 2 // link-level multicast
	PacketOtherHost PacketType = 3 // addressed to another host
	PacketOutgoing  PacketType = 4 // sent by this host
)

// Config tunes a Ring. A nil *Config means all defaults.
type Config struct {
	// RingSize is the total ring size in bytes (default 64 MiB), rounded
	// down to whole blocks; at least two blocks.
	RingSize int
	// BlockSize is the size of one block (default BlockSizeFor(SnapLen)): a power-of-two
	// multiple of the page size. It bounds the largest packet captured.
	BlockSize int
	// BlockTimeout is how long the kernel keeps a block open before it
	// hands a partly filled one over (default 100ms; short for live output).
	BlockTimeout time.Duration
	// SnapLen is the most bytes kept of a packet (default
	// pcapng.DefaultSnapLen, what the file format's readers take).
	SnapLen int
	// Filter is a classic BPF program; nil accepts everything.
	Filter []bpf.RawInstruction
	// NetNS, if positive, is an fd of the network namespace to open the
	// socket in.
	NetNS int
	// DropOutgoing leaves out the packets the interface sends
	// (PacketOutgoing), in the kernel, before they reach the ring or its
	// counters. On a loopback device every packet reaches a packet socket
	// twice: xmit_one hands it over as sent (dev_queue_xmit_nit sets
	// PACKET_OUTGOING), then loopback_xmit passes it to __netif_rx and it
	// comes again as received (PACKET_HOST, from eth_type_trans). Keeping
	// only the received copy shows each packet once, as libpcap does on
	// lo (linux_check_direction in pcap-linux.c, which does it after the
	// ring, so that its counters count both copies).
	DropOutgoing bool
}

// acceptAll is a filter's return value that keeps a packet whole: the
// kernel cuts a packet to the smaller of it and the packet's length.
const acceptAll = 0xffffffff

// dropOutgoing returns the filter prog (nil: accept everything) preceded
// by a test that rejects outgoing packets (SKF_AD_PKTTYPE, skb->pkt_type).
// A is 0 again after the test, as the kernel starts a program, so that
// prog runs as it would alone.
func dropOutgoing(prog []bpf.RawInstruction) []bpf.RawInstruction {
	pre := []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(PacketOutgoing), SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.LoadConstant{Dst: bpf.RegA, Val: 0},
	}
	if len(prog) == 0 {
		pre = append(pre, bpf.RetConstant{Val: acceptAll})
	}
	out := make([]bpf.RawInstruction, 0, len(pre)+len(prog))
	for _, ins := range pre {
		raw, err := ins.Assemble()
		if err != nil {
			panic(err) // constant instructions above
		}
		out = append(out, raw)
	}
	return append(out, prog...)
}

func (c *Config) withDefaults() Config {
	var d Config
	if c != nil {
		d = *c
	}
	if d.RingSize == 0 {
		d.RingSize = DefaultRingSize
	}
	if d.BlockTimeout == 0 {
		d.BlockTimeout = DefaultBlockTimeout
	}
	if d.SnapLen == 0 {
		d.SnapLen = pcapng.DefaultSnapLen
	}
	if d.BlockSize == 0 {
		d.BlockSize = BlockSizeFor(d.SnapLen)
	}
	return d
}

// Packet is one captured packet. Its Data is valid only during the callback
// that received it; use Clone to keep it.
type Packet struct {
	// Data holds the captured bytes, with a VLAN tag the kernel stripped put
	// back in place, truncated to the snap length.
	Data []byte
	// Length is the packet's original length (with the re-inserted tag).
	Length int
	// Timestamp is the capture time in Unix nanoseconds.
	Timestamp int64
	// IfIndex is the interface the packet was seen on.
	IfIndex int
	// Type says how the packet met the interface.
	Type PacketType
	// InRing says Data points into the ring itself, where it stays valid
	// until RunBlocks calls its done function for the block; otherwise
	// (a VLAN tag was put back) Data is in a scratch buffer that the next
	// such packet reuses, and is valid only during the callback.
	InRing bool
}

// Clone returns a copy of p whose Data the caller owns.
func (p *Packet) Clone() Packet {
	c := *p
	c.Data = append([]byte(nil), p.Data...)
	return c
}

// Stats are running totals of the kernel's counters (PACKET_STATISTICS is
// clear-on-read; the Ring sums it).
type Stats struct {
	// Packets counts packets the filter accepted, including dropped ones.
	Packets uint64
	// Drops counts packets lost because the ring was full.
	Drops uint64
	// FreezeQueue counts times the ring was frozen because it was full.
	FreezeQueue uint64
}
