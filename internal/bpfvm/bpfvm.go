// Package bpfvm interprets classic BPF programs the way the Linux kernel
// runs a socket filter, including the ancillary loads nsntrace's filters
// use (SKF_AD_PKTTYPE, SKF_AD_VLAN_TAG, SKF_AD_VLAN_TAG_PRESENT,
// SKF_AD_PROTOCOL, SKF_AD_IFINDEX). Tests use it to run libpcap's programs
// and ours over the same packets.
package bpfvm

import (
	"encoding/binary"

	"golang.org/x/net/bpf"
)

// skfAdOff is SKF_AD_OFF: loads at or above it are ancillary.
const skfAdOff = 0xfffff000

// Ancillary offsets (linux/filter.h).
const (
	adProtocol   = 0
	adPktType    = 4
	adIfIndex    = 8
	adVLANTag    = 44
	adVLANTagPst = 48
	adVLANTPID   = 60
)

// Meta is what the kernel knows about a packet beyond its bytes.
type Meta struct {
	Protocol    uint16 // skb->protocol, host order
	PktType     uint32 // PACKET_HOST, PACKET_OUTGOING, ...
	IfIndex     uint32
	VLANPresent bool   // the kernel stripped a tag into metadata
	VLANTCI     uint16 // that tag's TCI
	VLANTPID    uint16
}

// Run executes prog over data and returns the filter's verdict: the number
// of bytes to keep, 0 to reject. Like the kernel, a load outside the packet
// or a division by zero rejects; A and X start at 0; there is no backward
// jump, and falling off the end rejects.
func Run(prog []bpf.RawInstruction, data []byte, m Meta) uint32 {
	var a, x uint32
	var mem [16]uint32
	load := func(off, size uint32) (uint32, bool) {
		if off >= skfAdOff {
			switch off - skfAdOff {
			case adProtocol:
				return uint32(m.Protocol), true
			case adPktType:
				return m.PktType, true
			case adIfIndex:
				return m.IfIndex, true
			case adVLANTag:
				return uint32(m.VLANTCI), true
			case adVLANTagPst:
				if m.VLANPresent {
					return 1, true
				}
				return 0, true
			case adVLANTPID:
				return uint32(m.VLANTPID), true
			}
			return 0, false
		}
		if uint64(off)+uint64(size) > uint64(len(data)) {
			return 0, false
		}
		switch size {
		case 1:
			return uint32(data[off]), true
		case 2:
			return uint32(binary.BigEndian.Uint16(data[off:])), true
		}
		return binary.BigEndian.Uint32(data[off:]), true
	}
	size := func(op uint16) uint32 {
		switch op & 0x18 {
		case opB:
			return 1
		case opH:
			return 2
		}
		return 4
	}
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		k := in.K
		switch in.Op & 0x07 {
		case opLD:
			switch in.Op & 0xe0 {
			case opIMM:
				a = k
			case opABS:
				v, ok := load(k, size(in.Op))
				if !ok {
					return 0
				}
				a = v
			case opIND:
				v, ok := load(k+x, size(in.Op))
				if !ok {
					return 0
				}
				a = v
			case opMEM:
				a = mem[k&15]
			case opLEN:
				a = uint32(len(data))
			}
		case opLDX:
			switch in.Op & 0xe0 {
			case opIMM:
				x = k
			case opMEM:
				x = mem[k&15]
			case opLEN:
				x = uint32(len(data))
			case opMSH:
				v, ok := load(k, 1)
				if !ok {
					return 0
				}
				x = 4 * (v & 0xf)
			}
		case opST:
			mem[k&15] = a
		case opSTX:
			mem[k&15] = x
		case opALU:
			v := k
			if in.Op&opX != 0 {
				v = x
			}
			switch in.Op & 0xf0 {
			case 0x00:
				a += v
			case 0x10:
				a -= v
			case 0x20:
				a *= v
			case 0x30:
				if v == 0 {
					return 0
				}
				a /= v
			case 0x40:
				a |= v
			case 0x50:
				a &= v
			case 0x60:
				if v >= 32 {
					a = 0
				} else {
					a <<= v
				}
			case 0x70:
				if v >= 32 {
					a = 0
				} else {
					a >>= v
				}
			case 0x80:
				a = -a
			case 0x90:
				if v == 0 {
					return 0
				}
				a %= v
			case 0xa0:
				a ^= v
			}
		case opJMP:
			v := k
			if in.Op&opX != 0 {
				v = x
			}
			var c bool
			switch in.Op & 0xf0 {
			case 0x00: // ja
				pc += int(k)
				continue
			case 0x10:
				c = a == v
			case 0x20:
				c = a > v
			case 0x30:
				c = a >= v
			case 0x40:
				c = a&v != 0
			}
			if c {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case opRET:
			if in.Op&0x18 == 0x10 { // ret a
				return a
			}
			return k
		case opMISC:
			if in.Op&0xf8 == 0x80 { // txa
				a = x
			} else { // tax
				x = a
			}
		}
	}
	return 0
}

// Classic BPF opcode parts (linux/bpf_common.h).
const (
	opLD   = 0x00
	opLDX  = 0x01
	opST   = 0x02
	opSTX  = 0x03
	opALU  = 0x04
	opJMP  = 0x05
	opRET  = 0x06
	opMISC = 0x07
	opH    = 0x08
	opB    = 0x10
	opX    = 0x08
	opIMM  = 0x00
	opABS  = 0x20
	opIND  = 0x40
	opMEM  = 0x60
	opLEN  = 0x80
	opMSH  = 0xa0
)
