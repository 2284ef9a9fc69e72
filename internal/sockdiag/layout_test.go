package sockdiag

import (
	"net/netip"
	"testing"
	"unsafe"
)

// The structs of include/uapi/linux/inet_diag.h, transcribed field by
// field; the compiler lays them out as C does (no field here needs more
// than natural alignment).
type cSockid struct {
	Sport  [2]byte
	Dport  [2]byte
	Src    [4]uint32
	Dst    [4]uint32
	If     uint32
	Cookie [2]uint32
}

type cReqV2 struct {
	Family   uint8
	Protocol uint8
	Ext      uint8
	Pad      uint8
	States   uint32
	ID       cSockid
}

type cMsg struct {
	Family  uint8
	State   uint8
	Timer   uint8
	Retrans uint8
	ID      cSockid
	Expires uint32
	Rqueue  uint32
	Wqueue  uint32
	UID     uint32
	Inode   uint32
}

// TestLayout checks layout.go's offsets against the header's structs.
func TestLayout(t *testing.T) {
	var id cSockid
	var req cReqV2
	var msg cMsg
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"idiag_sport", unsafe.Offsetof(id.Sport), sockidSport},
		{"idiag_dport", unsafe.Offsetof(id.Dport), sockidDport},
		{"idiag_src", unsafe.Offsetof(id.Src), sockidSrc},
		{"idiag_dst", unsafe.Offsetof(id.Dst), sockidDst},
		{"idiag_if", unsafe.Offsetof(id.If), sockidIf},
		{"idiag_cookie", unsafe.Offsetof(id.Cookie), sockidCookie},
		{"sizeof inet_diag_sockid", unsafe.Sizeof(id), sockidLen},
		{"sdiag_family", unsafe.Offsetof(req.Family), reqFamily},
		{"sdiag_protocol", unsafe.Offsetof(req.Protocol), reqProtocol},
		{"idiag_states", unsafe.Offsetof(req.States), reqStates},
		{"req id", unsafe.Offsetof(req.ID), reqID},
		{"sizeof inet_diag_req_v2", unsafe.Sizeof(req), reqLen},
		{"idiag_family", unsafe.Offsetof(msg.Family), msgFamily},
		{"idiag_state", unsafe.Offsetof(msg.State), msgState},
		{"msg id", unsafe.Offsetof(msg.ID), msgID},
		{"idiag_uid", unsafe.Offsetof(msg.UID), msgUID},
		{"idiag_inode", unsafe.Offsetof(msg.Inode), msgInode},
		{"sizeof inet_diag_msg", unsafe.Sizeof(msg), msgLen},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestRequest: the ends go where each protocol's lookup reads them.
func TestRequest(t *testing.T) {
	l, r := netip.MustParseAddrPort("10.0.0.2:40000"), netip.MustParseAddrPort("192.0.2.7:80")
	b, ok := request(ProtoTCP, l, r)
	if !ok || b[reqFamily] != afInet || b[reqProtocol] != ProtoTCP {
		t.Fatalf("tcp request: %v %x", ok, b)
	}
	id := b[reqID:]
	if id[0] != 40000>>8 || id[1] != 40000&255 || id[3] != 80 || id[sockidSrc] != 10 || id[sockidDst] != 192 {
		t.Errorf("tcp: the local end is not the source: % x", id[:sockidLen])
	}
	b, _ = request(ProtoUDP, l, r)
	id = b[reqID:]
	if id[1] != 80 || id[sockidSrc] != 192 || id[sockidDst] != 10 {
		t.Errorf("udp: the remote end is not the source: % x", id[:sockidLen])
	}
	if _, ok := request(ProtoTCP, l, netip.MustParseAddrPort("[2001:db8::1]:80")); ok {
		t.Error("mixed families: a request")
	}
	if _, ok := request(1, l, r); ok {
		t.Error("icmp: a request")
	}
	if b, ok := request(ProtoTCP, netip.MustParseAddrPort("[::ffff:10.0.0.2]:1"), r); !ok || b[reqFamily] != afInet {
		t.Errorf("v4-mapped local: %v family %d", ok, b[reqFamily])
	}
}

// FuzzParseReply: any bytes decode without panic; an error means a zero
// Socket; a decoded reply re-encodes to the same fields.
func FuzzParseReply(f *testing.F) {
	ok := make([]byte, msgLen+8)
	ok[msgFamily], ok[msgState] = afInet, 10
	copy(ok[msgID+sockidSrc:], []byte{127, 0, 0, 1})
	ok[msgInode] = 7
	f.Add(ok)
	v6 := append([]byte(nil), ok...)
	v6[msgFamily] = afInet6
	f.Add(v6)
	f.Add(ok[:msgLen-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseReply(b)
		if err != nil {
			if s != (Socket{}) {
				t.Fatalf("error %v with %+v", err, s)
			}
			return
		}
		if len(b) < msgLen {
			t.Fatalf("decoded %d bytes", len(b))
		}
		switch s.Family {
		case afInet:
			if !s.Local.Addr().Is4() || !s.Remote.Addr().Is4() {
				t.Fatalf("inet: %+v", s)
			}
		case afInet6:
			if !s.Local.Addr().Is6() || !s.Remote.Addr().Is6() {
				t.Fatalf("inet6: %+v", s)
			}
		default:
			if s.Local.IsValid() || s.Remote.IsValid() {
				t.Fatalf("family %d with addresses: %+v", s.Family, s)
			}
		}
		again, err := parseReply(b[:msgLen])
		if err != nil || again != s {
			t.Fatalf("the attributes changed the socket: %+v vs %+v", again, s)
		}
	})
}
