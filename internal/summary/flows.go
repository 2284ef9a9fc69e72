package summary

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

// Conversation flags: what a conversation's TCP packets showed.
const (
	fSynOut = 1 << iota
	fSynIn
	fSynAckOut
	fSynAckIn
	fRstOut
	fRstIn
	fMidStream // first seen after its handshake
	fOutbound  // the program initiated it
)

// nameSegments is how many outbound TCP payload segments of each
// conversation go to the name decoder: a TLS ClientHello or an HTTP
// request head comes first, and a retransmission or a split hello may
// take a few more.
const nameSegments = 4

// nameHead bounds what the name decoder gets of an outbound TCP segment
// beyond the headers: a ClientHello or a request head fits.
const nameHead = 16 << 10

// untrackedBits sizes the bit array that estimates how many distinct
// conversations did not fit the table (linear counting): 128 KiB, good to
// a few per cent up to several million conversations.
const untrackedBits = 1 << 20

type entry struct {
	key         flowKey
	first, last int64
	pktsOut     uint64
	pktsIn      uint64
	bytesOut    uint64
	bytesIn     uint64
	flags       uint8
	nameSegs    uint8
}

// Flows is the conversation table the capture path updates in line: a
// fixed-size open-addressing hash table over conversations, allocated
// once, so that a packet of a known or a new conversation costs no
// allocation and memory stays bounded however many conversations a
// trace sees. It is not safe for concurrent use.
type Flows struct {
	ents  []entry  // in order of first appearance; cap is the table's cap
	slots []uint64 // 0: empty; else hash tag<<32 | index+1 into ents
	mask  uint64
	seed  uint64
	last  int // index of the conversation of the previous packet, or -1

	packets       uint64
	untrackedPkts uint64
	untrackedSet  []uint64 // linear-counting bits over untracked conversations
	untrackedOnes int
}

// NewFlows returns an empty table with room for cfg.MaxConversations.
func NewFlows(cfg *Config) *Flows {
	n := DefaultMaxConversations
	if cfg != nil && cfg.MaxConversations > 0 {
		n = cfg.MaxConversations
	}
	// At most half full, so that a probe for a conversation that is not
	// there (every packet once the table is full) ends after a few slots.
	size := uint64(1) << bits.Len64(uint64(2*n-1))
	return &Flows{
		ents:         make([]entry, 0, n),
		slots:        make([]uint64, size),
		mask:         size - 1,
		seed:         rand.Uint64() | 1, // a traced program cannot aim at collisions
		last:         -1,
		untrackedSet: make([]uint64, untrackedBits/64),
	}
}

// Account counts one Ethernet frame: data are the captured bytes, length
// the original frame length, ts the capture time in Unix ns, outbound
// whether the traced program sent it. It returns how many leading bytes
// of data the name decoder (Names.Decode) should see: 0 for the frames
// that cannot teach a name, which is nearly all of a busy trace. It does
// not allocate.
func (f *Flows) Account(data []byte, length int, ts int64, outbound bool) int {
	f.packets++
	var p parsed
	if !parseFrame(data, outbound, &p) {
		return 0
	}
	k := &p.key
	proto := k.proto()
	dns := (proto == ProtoUDP || proto == ProtoTCP) && (k.localPort() == 53 || k.remotePort() == 53)
	var e *entry
	if f.last >= 0 && f.ents[f.last].key.eq(k) {
		e = &f.ents[f.last] // bulk traffic comes in bursts of one conversation
	} else {
		e = f.lookup(k, p.tcpFlags, outbound, ts)
		if e == nil {
			if dns && p.payload > 0 {
				return len(data) // names still count when the table is full
			}
			return 0
		}
	}
	e.last = ts
	if outbound {
		e.pktsOut++
		e.bytesOut += uint64(length)
	} else {
		e.pktsIn++
		e.bytesIn += uint64(length)
	}
	if proto == ProtoTCP {
		e.flags |= tcpEvents(p.tcpFlags, outbound)
	}
	switch {
	case p.payload == 0:
		return 0
	case dns:
		return len(data)
	case proto == ProtoTCP && outbound && e.nameSegs < nameSegments:
		e.nameSegs++
		return min(len(data), p.l4off+nameHead)
	}
	return 0
}

func tcpEvents(fl uint8, outbound bool) uint8 {
	var ev uint8
	switch fl & (tcpSYN | tcpACK) {
	case tcpSYN:
		ev = fSynOut
	case tcpSYN | tcpACK:
		ev = fSynAckOut
	}
	if fl&tcpRST != 0 {
		ev |= fRstOut
	}
	if !outbound {
		ev <<= 1 // each In flag follows its Out flag
	}
	return ev
}

// lookup finds k's entry, adding it if there is room; nil means the table
// is full and k not in it (counted as untracked).
func (f *Flows) lookup(k *flowKey, tcpFlags uint8, outbound bool, ts int64) *entry {
	h := f.hash(k)
	tag := h>>32 | 1<<31 // never 0, so that 0 marks an empty slot
	for i := h & f.mask; ; i = (i + 1) & f.mask {
		s := f.slots[i]
		if s == 0 {
			if len(f.ents) == cap(f.ents) {
				f.untracked(h)
				return nil
			}
			f.ents = append(f.ents, entry{key: *k, first: ts, flags: initiator(k, tcpFlags, outbound)})
			f.slots[i] = tag<<32 | uint64(len(f.ents))
			f.last = len(f.ents) - 1
			return &f.ents[f.last]
		}
		if s>>32 == tag {
			if j := int(uint32(s)) - 1; f.ents[j].key.eq(k) {
				f.last = j
				return &f.ents[j]
			}
		}
	}
}

// initiator decides, from a conversation's first packet, who started it.
func initiator(k *flowKey, fl uint8, outbound bool) uint8 {
	out := outbound
	var mid uint8
	if k.proto() == ProtoTCP {
		switch fl & (tcpSYN | tcpACK) {
		case tcpSYN:
		case tcpSYN | tcpACK:
			out = !outbound // the SYN went the other way, unseen
		default:
			// Mid-stream: the side with the ephemeral port started it.
			mid, out = fMidStream, k.localPort() > k.remotePort()
		}
	}
	if out {
		return mid | fOutbound
	}
	return mid
}

func (f *Flows) untracked(h uint64) {
	f.untrackedPkts++
	b := (h >> 40) & (untrackedBits - 1)
	w, m := &f.untrackedSet[b/64], uint64(1)<<(b%64)
	if *w&m == 0 {
		*w |= m
		f.untrackedOnes++
	}
}

// Untracked estimates how many distinct conversations did not fit the
// table. It is exact but for hash collisions, which linear counting
// corrects for; it never exceeds the packets of those conversations.
func (f *Flows) Untracked() uint64 {
	if f.untrackedOnes == 0 {
		return 0
	}
	zero := untrackedBits - f.untrackedOnes
	if zero == 0 {
		return f.untrackedPkts // saturated: an upper bound is all that is left
	}
	est := -float64(untrackedBits) * math.Log(float64(zero)/untrackedBits)
	return min(uint64(math.Round(est)), f.untrackedPkts)
}

// UntrackedPackets is the number of packets of conversations that did not
// fit the table.
func (f *Flows) UntrackedPackets() uint64 { return f.untrackedPkts }

// Len is the number of conversations in the table.
func (f *Flows) Len() int { return len(f.ents) }

// Packets is the number of frames accounted.
func (f *Flows) Packets() uint64 { return f.packets }

// hash mixes the key's five words with 64x64->128-bit multiplications
// (the folded multiply of wyhash-style hashes): a few ns, no allocation.
func (f *Flows) hash(k *flowKey) uint64 {
	const m1, m2, m3 = 0xa0761d6478bd642f, 0xe7037ed1a0b428db, 0x8ebc6af09c88c6e3
	h := fold(k.l0^f.seed, k.l1^m1)
	h = fold(k.r0^m2, k.r1^h)
	return fold(h^m3, k.meta^f.seed)
}

func fold(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}
