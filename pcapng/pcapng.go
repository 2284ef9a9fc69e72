package pcapng

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
)

// LinkType is a link-layer header type from the tcpdump.org registry
// (LINKTYPE_*), as pcap and pcapng files record it.
type LinkType uint16

// Link types the writers are used with.
const (
	// LinkTypeEthernet is LINKTYPE_ETHERNET: IEEE 802.3 frames.
	LinkTypeEthernet LinkType = 1
	// LinkTypeRaw is LINKTYPE_RAW: bare IPv4 or IPv6 packets.
	LinkTypeRaw LinkType = 101
)

// Direction is the direction of a packet as epb_flags bits 0-1 encode it.
type Direction uint8

// Directions of a packet.
const (
	DirectionUnknown  Direction = 0
	DirectionInbound  Direction = 1
	DirectionOutbound Direction = 2
)

// String returns the name Wireshark shows for the direction.
func (d Direction) String() string {
	switch d {
	case DirectionUnknown:
		return "unknown"
	case DirectionInbound:
		return "inbound"
	case DirectionOutbound:
		return "outbound"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// Reception is how a packet was received, as epb_flags bits 2-4 encode it.
type Reception uint8

// Reception types of a packet.
const (
	ReceptionUnknown     Reception = 0
	ReceptionUnicast     Reception = 1
	ReceptionMulticast   Reception = 2
	ReceptionBroadcast   Reception = 3
	ReceptionPromiscuous Reception = 4
)

// String returns the name of the reception type.
func (r Reception) String() string {
	switch r {
	case ReceptionUnknown:
		return "unknown"
	case ReceptionUnicast:
		return "unicast"
	case ReceptionMulticast:
		return "multicast"
	case ReceptionBroadcast:
		return "broadcast"
	case ReceptionPromiscuous:
		return "promiscuous"
	}
	return fmt.Sprintf("Reception(%d)", uint8(r))
}

// Format is a capture file format. Its zero value is invalid.
type Format int

// File formats.
const (
	// FormatPcapNG is pcapng with nanosecond timestamps and all metadata.
	FormatPcapNG Format = 1
	// FormatPcap is classic pcap with nanosecond timestamps (magic
	// 0xa1b23c4d), one interface and no metadata.
	FormatPcap Format = 2
)

// String returns the format's name as ParseFormat accepts it.
func (f Format) String() string {
	switch f {
	case FormatPcapNG:
		return "pcapng"
	case FormatPcap:
		return "pcap"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat returns the format named "pcapng" or "pcap" (case does not
// matter), as a command line's -F flag would give it.
func ParseFormat(name string) (Format, error) {
	switch strings.ToLower(name) {
	case "pcapng":
		return FormatPcapNG, nil
	case "pcap":
		return FormatPcap, nil
	}
	return 0, fmt.Errorf("parse format %q: want pcapng or pcap: %w", name, os.ErrInvalid)
}

const (
	// DefaultBufferSize is the default of Config.BufferSize.
	DefaultBufferSize = 1 << 20
	// DefaultSnapLen is the snap length of an Interface whose SnapLen is
	// zero: libpcap's and Wireshark's maximum for Ethernet.
	DefaultSnapLen = 262144
	// MaxSnapLen is the largest snap length AddInterface takes, far above
	// any real packet and low enough that a block's 32-bit length cannot
	// overflow.
	MaxSnapLen = 1 << 30
	// MaxOptionLen is the longest option value (and name record) a pcapng
	// block can hold: its length is a 16-bit field.
	MaxOptionLen = 0xffff
	// MaxBlockSize is the largest metadata block the writer produces:
	// libpcap's bound for a block (MAX_BLOCKSIZE in sf-pcapng.c), a packet
	// block of 262144 data bytes plus 128 KiB of options. A reader that
	// can hold the largest packet block can hold every metadata block.
	MaxBlockSize = 32 + DefaultSnapLen + 128*1024
)

// SecretsType is the kind of a Decryption Secrets Block's secrets.
type SecretsType uint32

// SecretsTLSKeyLog: lines of the NSS key log format (SSLKEYLOGFILE), as TLS
// libraries write them.
const SecretsTLSKeyLog SecretsType = 0x544c534b // "TLSK"

// ErrNoSecrets is wrapped by the error of WriteSecrets for a file format
// that cannot hold secrets (classic pcap).
var ErrNoSecrets = errors.New("the file format cannot hold decryption secrets")

// ErrTooLong is wrapped by the errors for values that do not fit the file
// format: an option value longer than MaxOptionLen, a metadata block larger
// than MaxBlockSize. Such values are refused, never truncated.
var ErrTooLong = errors.New("value too long for the file format")

// Config selects the file format and the metadata of the section header. A
// nil *Config means pcapng with defaults.
type Config struct {
	// Format is the file format; zero is invalid.
	Format Format
	// Hardware, OS and UserAppl are the shb_hardware, shb_os and
	// shb_userappl options ("nsntrace VERSION"); empty ones are left out.
	// Classic pcap ignores them.
	Hardware, OS, UserAppl string
	// Comments are written as opt_comment options of the section header
	// (the traced command line, for instance). Classic pcap ignores them.
	Comments []string
	// BufferSize is the size of the batches handed to the underlying
	// io.Writer; zero or less means DefaultBufferSize.
	BufferSize int
}

// Interface describes a capture interface (a pcapng Interface Description
// Block).
type Interface struct {
	// LinkType is the link-layer header type of the packets.
	LinkType LinkType
	// SnapLen is the most bytes of a packet the file holds; zero means
	// DefaultSnapLen, more than MaxSnapLen is refused.
	SnapLen uint32
	// Name, Description, Filter and OS are the if_name, if_description,
	// if_filter (a libpcap filter expression) and if_os options; empty ones
	// are left out.
	Name, Description, Filter, OS string
}

// Packet is one captured packet (a pcapng Enhanced Packet Block).
type Packet struct {
	// Interface is the id AddInterface returned.
	Interface int
	// Timestamp is the capture time in nanoseconds since the Unix epoch; it
	// may not be negative.
	Timestamp int64
	// Length is the packet's original length on the wire; zero means
	// len(Data). It may not be less than len(Data).
	Length int
	// Data are the captured bytes, at most the interface's snap length.
	Data []byte
	// Direction and Reception go into epb_flags (pcapng only).
	Direction Direction
	Reception Reception
	// Comment is an optional opt_comment (pcapng only).
	Comment string
	// DropCount is an optional epb_dropcount: packets lost between this
	// one and the one before; zero leaves the option out (pcapng only).
	DropCount uint64
}

// Stats are the counters of an Interface Statistics Block. A counter is
// written only when its Has* field is true; a zero StartTime or EndTime is
// left out.
type Stats struct {
	// StartTime and EndTime bound the capture, in Unix nanoseconds.
	StartTime, EndTime int64
	// Received (isb_ifrecv) counts packets the interface saw, IfDrop
	// (isb_ifdrop) packets it dropped, OSDrop (isb_osdrop) packets the
	// operating system dropped (ring full), FilterAccept
	// (isb_filteraccept) packets the filter accepted.
	Received, IfDrop, OSDrop, FilterAccept             uint64
	HasReceived, HasIfDrop, HasOSDrop, HasFilterAccept bool
}

// Writer writes a capture file. It is not safe for concurrent use.
type Writer interface {
	// AddInterface describes an interface and returns the id packets
	// refer to. Classic pcap takes only one.
	AddInterface(Interface) (int, error)
	// WritePacket writes one packet; it does not allocate and does not
	// keep p or p.Data.
	WritePacket(p *Packet) error
	// WritePacketRef writes one packet like WritePacket, but may keep a
	// reference to p.Data instead of copying it (it does so for large
	// packets, which then reach the file in one vectored write with the
	// blocks around them). The caller must leave p.Data unchanged until
	// the next Release, Flush or Close returns. It does not keep p.
	WritePacketRef(p *Packet) error
	// Release writes out the packets whose data WritePacketRef referenced,
	// if any, so that the caller may reuse that memory.
	Release() error
	// AddNames records host names for an address (a Name Resolution
	// Block record); classic pcap ignores them.
	AddNames(addr netip.Addr, names ...string) error
	// WriteSecrets writes decryption secrets (a Decryption Secrets
	// Block) that readers apply to the packets after them; classic pcap
	// fails with ErrNoSecrets.
	WriteSecrets(typ SecretsType, data []byte) error
	// WriteStats writes the statistics of an interface; classic pcap
	// ignores them.
	WriteStats(iface int, s Stats) error
	// Flush hands everything written so far to the underlying io.Writer.
	Flush() error
	// Size is how many bytes the capture holds so far, pending ones
	// included: its size once flushed. A caller may start a new file
	// when it grows too large (tcpdump -C).
	Size() int64
	// Close writes what is pending and flushes; it does not close the
	// underlying io.Writer. It returns the first write error, every time
	// it is called.
	io.Closer
}

// NewWriter returns a Writer of the configured format on w. The pcapng
// section header (or, for pcap, nothing until AddInterface) is buffered
// and reaches w at the first flush.
func NewWriter(w io.Writer, cfg *Config) (Writer, error) {
	if cfg == nil {
		cfg = &Config{Format: FormatPcapNG}
	}
	size := cfg.BufferSize
	if size <= 0 {
		size = DefaultBufferSize
	}
	switch cfg.Format {
	case FormatPcapNG:
		return newNgWriter(w, cfg, size)
	case FormatPcap:
		return newPcapWriter(w, size), nil
	}
	return nil, fmt.Errorf("create capture writer: unknown format %d: %w", int(cfg.Format), os.ErrInvalid)
}

// checkPacket validates what both formats require of a packet: the
// interface exists, the captured bytes fit its snap length and the original
// length, the timestamp is not negative. It returns the original length.
// The writers call it only once their inline check failed, to say why.
func checkPacket(p *Packet, snaplens []uint32) (uint32, error) {
	if uint(p.Interface) >= uint(len(snaplens)) {
		return 0, fmt.Errorf("write packet: interface %d was not added: %w", p.Interface, os.ErrInvalid)
	}
	n := len(p.Data)
	if uint64(n) > uint64(snaplens[p.Interface]) {
		return 0, fmt.Errorf("write packet: %d bytes exceed the snap length %d: %w", n, snaplens[p.Interface], os.ErrInvalid)
	}
	orig := p.Length
	if orig == 0 {
		orig = n
	}
	if orig < n || uint64(orig) > 0xffffffff {
		return 0, fmt.Errorf("write packet: original length %d with %d bytes captured: %w", p.Length, n, os.ErrInvalid)
	}
	if p.Timestamp < 0 {
		return 0, fmt.Errorf("write packet: timestamp %d before 1970: %w", p.Timestamp, os.ErrInvalid)
	}
	return uint32(orig), nil
}

var errClosed = fmt.Errorf("use capture writer: %w", os.ErrClosed)

// snapLen returns the effective snap length of an interface, or an error
// for one above MaxSnapLen.
func snapLen(ifc Interface) (uint32, error) {
	switch {
	case ifc.SnapLen == 0:
		return DefaultSnapLen, nil
	case ifc.SnapLen > MaxSnapLen:
		return 0, fmt.Errorf("add interface %q: snap length %d exceeds %d: %w", ifc.Name, ifc.SnapLen, MaxSnapLen, os.ErrInvalid)
	}
	return ifc.SnapLen, nil
}
