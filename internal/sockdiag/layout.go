package sockdiag

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// The layouts of include/uapi/linux/inet_diag.h, in one place; the layout
// test checks them against the header's structs.
const (
	// struct inet_diag_sockid
	sockidSport  = 0  // __be16 idiag_sport
	sockidDport  = 2  // __be16 idiag_dport
	sockidSrc    = 4  // __be32 idiag_src[4]
	sockidDst    = 20 // __be32 idiag_dst[4]
	sockidIf     = 36 // __u32 idiag_if
	sockidCookie = 40 // __u32 idiag_cookie[2]
	sockidLen    = 48

	// struct inet_diag_req_v2
	reqFamily   = 0 // __u8 sdiag_family
	reqProtocol = 1 // __u8 sdiag_protocol
	reqStates   = 4 // __u32 idiag_states
	reqID       = 8 // struct inet_diag_sockid id
	reqLen      = reqID + sockidLen

	// struct inet_diag_msg
	msgFamily = 0 // __u8 idiag_family
	msgState  = 1 // __u8 idiag_state
	msgID     = 4 // struct inet_diag_sockid id
	msgUID    = 64
	msgInode  = 68
	msgLen    = 72
)

// Protocols Lookup knows.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

const (
	afInet  = 2
	afInet6 = 10
	// sockDiagByFamily is SOCK_DIAG_BY_FAMILY, the request and reply type.
	sockDiagByFamily = 20
	// noCookie is INET_DIAG_NOCOOKIE: the request names no socket cookie.
	noCookie = ^uint32(0)
	// allStates asks for a socket in any state.
	allStates = ^uint32(0)
)

// errBadReply is a reply too short for an inet_diag_msg.
var errBadReply = errors.New("sock_diag reply shorter than inet_diag_msg")

// request encodes the inet_diag_req_v2 that looks up the socket of proto
// from local to remote, or reports false for a protocol or pair of
// addresses Lookup cannot ask about.
func request(proto uint8, local, remote netip.AddrPort) ([reqLen]byte, bool) {
	var b [reqLen]byte
	la, ra := local.Addr().Unmap(), remote.Addr().Unmap()
	switch {
	case proto != ProtoTCP && proto != ProtoUDP:
		return b, false
	case la.Is4() && ra.Is4():
		b[reqFamily] = afInet
	case la.Is6() && ra.Is6():
		b[reqFamily] = afInet6
	default:
		return b, false
	}
	b[reqProtocol] = proto
	binary.NativeEndian.PutUint32(b[reqStates:], allStates)
	id := b[reqID : reqID+sockidLen]
	src, dst := local, remote
	if proto == ProtoUDP {
		// udp_dump_one looks the socket up as the receiver of a datagram
		// from idiag_src to idiag_dst.
		src, dst = remote, local
	}
	binary.BigEndian.PutUint16(id[sockidSport:], src.Port())
	binary.BigEndian.PutUint16(id[sockidDport:], dst.Port())
	putAddr(id[sockidSrc:sockidSrc+16], src.Addr().Unmap())
	putAddr(id[sockidDst:sockidDst+16], dst.Addr().Unmap())
	// idiag_if 0: any interface.
	binary.NativeEndian.PutUint32(id[sockidCookie:], noCookie)
	binary.NativeEndian.PutUint32(id[sockidCookie+4:], noCookie)
	return b, true
}

// putAddr writes a into an idiag_src or idiag_dst: an IPv4 address in its
// first word, as inet_diag_find_one_icsk reads idiag_src[0].
func putAddr(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
		return
	}
	v := a.As16()
	copy(b, v[:])
}

// Socket is what a reply says of the socket found.
type Socket struct {
	Family uint8
	State  uint8
	// Local and Remote are the socket's ends (the remote unspecified for a
	// listener or an unconnected UDP socket).
	Local, Remote netip.AddrPort
	UID           uint32
	// Inode is the socket's inode number; 0 for request and TIME_WAIT
	// sockets, which no process holds.
	Inode uint32
}

// parseReply decodes the inet_diag_msg at the start of b (attributes
// after it are ignored).
func parseReply(b []byte) (Socket, error) {
	if len(b) < msgLen {
		return Socket{}, errBadReply
	}
	s := Socket{
		Family: b[msgFamily],
		State:  b[msgState],
		UID:    binary.NativeEndian.Uint32(b[msgUID:]),
		Inode:  binary.NativeEndian.Uint32(b[msgInode:]),
	}
	id := b[msgID : msgID+sockidLen]
	sp, dp := binary.BigEndian.Uint16(id[sockidSport:]), binary.BigEndian.Uint16(id[sockidDport:])
	switch s.Family {
	case afInet:
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(id[sockidSrc:sockidSrc+4])), sp)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(id[sockidDst:sockidDst+4])), dp)
	case afInet6:
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(id[sockidSrc:sockidSrc+16])), sp)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(id[sockidDst:sockidDst+16])), dp)
	}
	return s, nil
}
