package nft

import (
	"fmt"
	"net/netip"
)

// Proto is the transport protocol of a published port.
type Proto uint8

// The protocols a port can be published for; the values are IPPROTO_*.
const (
	TCP Proto = 6
	UDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("proto %d", uint8(p))
}

// Port is one published port: what reaches HostPort of the host, on
// HostAddr or, when HostAddr is the zero Addr, on any address of the
// host, is sent to the program's Port.
type Port struct {
	Proto    Proto
	HostAddr netip.Addr
	HostPort uint16
	Port     uint16
}

func (p Port) String() string {
	h := ""
	if p.HostAddr.IsValid() {
		h = netip.AddrPortFrom(p.HostAddr, p.HostPort).String()
	} else {
		h = fmt.Sprint(p.HostPort)
	}
	return fmt.Sprintf("%s:%d/%s", h, p.Port, p.Proto)
}
