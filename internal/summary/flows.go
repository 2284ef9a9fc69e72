package summary

import (
	"encoding/binary"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
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

// minFilterWords is the least size of the filter, in pairs of words: its
// second words are also the bit array that estimates how many distinct
// conversations did not fit the table (linear counting), and 2^19 bits
// keep that estimate within a per cent up to about four million.
const minFilterWords = 1 << 13

type entry struct {
	key         flowKey
	first, last int64
	pktsOut     uint64
	pktsIn      uint64
	bytesOut    uint64
	bytesIn     uint64
	flags       uint8
	nameSegs    uint8
	// proc is 1 + the index in Flows.procs of the process that owned the
	// conversation's socket, 0 if unknown.
	proc int32
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
	// filter holds pairs of words. The first of each pair has three bits
	// set for the hash of every conversation in the table (a blocked
	// Bloom filter, at least eight bits per conversation): once the table
	// is full, most packets of conversations not in it learn so from this
	// array rather than from a probe of slots, which is eight times
	// larger and out of cache. The second word of the pair counts them
	// (linear counting), so that such a packet touches one cache line.
	filter     []uint64
	filterMask uint64
	last       int // index of the conversation of the previous packet, or -1
	// hot remembers the raw header bytes of the packets parse4Fast read
	// whose conversations want nothing more than counting, in a small
	// direct-mapped cache keyed by those bytes (hotSlot): the next packet
	// of a bulk transfer, or of any of the few dozen connections a busy
	// service has open at once, is then counted without being parsed or
	// looked up. One entry a direction was enough for a download, not for
	// a served keep-alive load, where each packet belongs to another
	// connection than the one before: the summary took 454 instructions
	// a packet there, 228 with this cache (cachegrind on
	// BenchmarkHandle/64/flows=keepalive in cmd/nsntrace).
	hot [1 << hotBits]hotFlow

	// fresh is 1 + the index of the conversation the last Account added,
	// 0 if it added none since TakeNew.
	fresh int
	// procs are the processes named by SetProcess, each once in a row.
	procs []Process

	untrackedPkts uint64
	// cutHeaders counts frames the snap length cut before their IP and
	// transport headers ended.
	cutHeaders    uint64
	untrackedOnes int // bits set in the second words of filter
}

type hotFlow struct {
	addrs uint64 // frame bytes 26..33: IPv4 source and destination
	ports uint32 // frame bytes 34..37
	proto uint8  // 6 or 17
	valid bool
	out   bool // the program sent it
	names bool // the name decoder wants this conversation's next payload
	idx   int
}

// hotBits sizes the hot cache: 256 entries of 24 bytes, so that the
// packets of a few dozen connections, both ways, seldom share an entry.
const hotBits = 8

// hotSlot is the hot cache's entry for a packet's raw addresses and ports.
func hotSlot(addrs uint64, ports uint32) int {
	return int(((addrs ^ uint64(ports)<<17) * 0x9e3779b97f4a7c15) >> (64 - hotBits))
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
	words := max(size/16, minFilterWords)
	return &Flows{
		ents:       make([]entry, 0, n),
		slots:      make([]uint64, size),
		mask:       size - 1,
		filter:     make([]uint64, 2*words),
		filterMask: words - 1,
		seed:       rand.Uint64() | 1, // a traced program cannot aim at collisions
		last:       -1,
	}
}

// Account counts one Ethernet frame: data are the captured bytes, length
// the original frame length, ts the capture time in Unix ns, outbound
// whether the traced program sent it. It returns how many leading bytes
// of data the name decoder (Names.Decode) should see: 0 for the frames
// that cannot teach a name, which is nearly all of a busy trace. It does
// not allocate.
func (f *Flows) Account(data []byte, length int, ts int64, outbound bool) int {
	// The hot path, written out here rather than called: it is most of
	// what a busy capture runs. It checks what parse4Fast checks, and
	// leaves SYN and RST segments (which change a conversation's state)
	// to the full path.
	if len(data) < 42 {
		return f.account(data, length, ts, outbound)
	}
	addrs, ports := binary.LittleEndian.Uint64(data[26:]), binary.LittleEndian.Uint32(data[34:])
	if h := &f.hot[hotSlot(addrs, ports)]; h.valid && addrs == h.addrs && ports == h.ports && h.out == outbound {
		w := binary.BigEndian.Uint64(data[12:]) // EtherType, version/IHL, TOS, total length, ID
		v := binary.BigEndian.Uint32(data[20:]) // flags/fragment offset, TTL, protocol
		n := int(uint16(w >> 16))
		if n == 0 {
			n = len(data) - 14
		}
		end := min(len(data), 14+n)
		ok := w>>40 == 0x080045 && v&0x3fff0000 == 0 && uint8(v) == h.proto && n >= 28
		if ok && h.proto == 6 {
			ok = end >= 54 // and so is the frame: the TCP header is there
			if ok {
				doff := int(data[46]>>4) * 4
				ok = data[47]&(tcpSYN|tcpRST) == 0 && doff >= 20 && 34+doff <= end && (!h.names || 34+doff == end)
			}
		} else if ok {
			ul := binary.BigEndian.Uint16(data[38:])
			ok = ul == 0 || ul >= 8
		}
		if ok {
			e := &f.ents[h.idx]
			e.last = ts
			if outbound {
				e.pktsOut++
				e.bytesOut += uint64(length)
			} else {
				e.pktsIn++
				e.bytesIn += uint64(length)
			}
			return 0
		}
	}
	return f.account(data, length, ts, outbound)
}

// account is Account for packets the hot path did not take.
func (f *Flows) account(data []byte, length int, ts int64, outbound bool) int {
	var p parsed
	if !parseFrame(data, outbound, &p) {
		if len(data) < length && len(data) < maxHeaders {
			// The snap length cut the headers: a conversation may be
			// missing, and the report says so.
			f.cutHeaders++
		}
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
	n := 0
	switch {
	case p.payload == 0:
	case dns:
		n = len(data)
	case proto == ProtoTCP && outbound && e.nameSegs < nameSegments && e.flags&(fOutbound|fMidStream) != 0:
		// What the program sends as a server (its peer sent the SYN)
		// names nothing: a name is in what the client sends.
		e.nameSegs++
		n = min(len(data), p.l4off+nameHead)
	}
	if p.fast && !dns {
		// A conversation still owed segments to the name decoder is hot
		// for its segments without payload (a download's ACKs).
		addrs, ports := binary.LittleEndian.Uint64(data[26:]), binary.LittleEndian.Uint32(data[34:])
		f.hot[hotSlot(addrs, ports)] = hotFlow{
			addrs: addrs, ports: ports, proto: data[23], valid: true, out: outbound, idx: f.last,
			names: proto == ProtoTCP && outbound && e.nameSegs < nameSegments && e.flags&(fOutbound|fMidStream) != 0,
		}
	}
	return n
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
	// Three bits in one word (a blocked Bloom filter): one cache line, and
	// 3% false positives at eight bits per conversation.
	fw := f.filter[2*((h>>20)&f.filterMask):]
	fw = fw[:2:2]
	pm := uint64(1)<<(h>>2&63) | uint64(1)<<(h>>8&63) | uint64(1)<<(h>>14&63)
	if fw[0]&pm != pm && len(f.ents) == cap(f.ents) {
		f.untracked(&fw[1], h)
		return nil
	}
	tag := h>>32 | 1<<31 // never 0, so that 0 marks an empty slot
	for i := h & f.mask; ; i = (i + 1) & f.mask {
		s := f.slots[i]
		if s == 0 {
			if len(f.ents) == cap(f.ents) {
				f.untracked(&fw[1], h) // a false positive of the filter
				return nil
			}
			f.ents = append(f.ents, entry{key: *k, first: ts, flags: initiator(k, tcpFlags, outbound)})
			fw[0] |= pm
			f.slots[i] = tag<<32 | uint64(len(f.ents))
			f.last = len(f.ents) - 1
			f.fresh = len(f.ents)
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

// TakeNew returns the conversation the packets accounted since the last
// call added, if one did: the packet Account just saw is then the first
// of a conversation (nearly always; if several packets were accounted,
// the last one added). The caller may then name its process with
// SetProcess. It does not allocate.
func (f *Flows) TakeNew() (NewConv, bool) {
	i := f.fresh - 1
	if i < 0 {
		return NewConv{}, false
	}
	f.fresh = 0
	k := &f.ents[i].key
	return NewConv{
		Proto: k.proto(), Local: k.localAddrPort(), Remote: k.remoteAddrPort(),
		Outbound:  f.ents[i].flags&fOutbound != 0,
		Initiated: f.ents[i].flags&(fOutbound|fMidStream) == fOutbound,
		idx:       i + 1,
	}, true
}

// NewConv is a conversation as TakeNew returns it.
type NewConv struct {
	Proto Proto
	// Local and Remote are the program's end and the other one.
	Local, Remote netip.AddrPort
	// Outbound says that the program started it; Initiated that it did
	// and that the conversation was seen from its start (not first seen
	// mid-stream): what an egress policy judges.
	Outbound, Initiated bool
	idx                 int // 1 + its index in the table; 0: not in it (ConvOf)
}

// ConvOf reads the conversation of an Ethernet frame seen from the
// program's side (outbound: the program sent it); Outbound in the answer
// is the frame's direction, which is who started the conversation only
// for its first packet. ok is false for a frame Account would count in no
// conversation. It does not allocate.
func ConvOf(frame []byte, outbound bool) (c NewConv, ok bool) {
	var p parsed
	if !parseFrame(frame, outbound, &p) {
		return c, false
	}
	k := &p.key
	return NewConv{Proto: k.proto(), Local: k.localAddrPort(), Remote: k.remoteAddrPort(), Outbound: outbound}, true
}

// Process is the process that owned a conversation's socket.
type Process struct {
	// Pid is as the program's PID namespace numbers it.
	Pid int
	// Comm is the command name (/proc/PID/comm), Cmdline its command line
	// with spaces between the arguments, cut short.
	Comm, Cmdline string
}

// SetProcess records that p owned the socket of c, a conversation
// TakeNew returned (others are not in the table: nothing is recorded).
func (f *Flows) SetProcess(c NewConv, p Process) {
	if c.idx <= 0 || c.idx > len(f.ents) {
		return
	}
	if n := len(f.procs); n == 0 || f.procs[n-1] != p {
		f.procs = append(f.procs, p)
	}
	f.ents[c.idx-1].proc = int32(len(f.procs))
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

func (f *Flows) untracked(w *uint64, h uint64) {
	f.untrackedPkts++
	if m := uint64(1) << (h >> 40 & 63); *w&m == 0 {
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
	m := 64 * (len(f.filter) / 2)
	zero := m - f.untrackedOnes
	if zero == 0 {
		return f.untrackedPkts // saturated: an upper bound is all that is left
	}
	est := -float64(m) * math.Log(float64(zero)/float64(m))
	return min(uint64(math.Round(est)), f.untrackedPkts)
}

// UntrackedPackets is the number of packets of conversations that did not
// fit the table.
func (f *Flows) UntrackedPackets() uint64 { return f.untrackedPkts }

// maxHeaders is the longest run of headers the table reads: Ethernet with
// two VLAN tags, IPv6 with room for extension headers, TCP with options.
const maxHeaders = 22 + 40 + 64 + 60

// CutHeaders counts frames left out because the snap length cut them
// before their headers ended.
func (f *Flows) CutHeaders() uint64 { return f.cutHeaders }

// Len is the number of conversations in the table.
func (f *Flows) Len() int { return len(f.ents) }

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
