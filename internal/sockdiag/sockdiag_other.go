//go:build !linux

package sockdiag

import (
	"fmt"
	"net/netip"
	"runtime"
)

// Conn is a NETLINK_SOCK_DIAG socket; only Linux has one.
type Conn struct{}

// Open reports that sock_diag is Linux's.
func Open(netns int) (*Conn, error) {
	return nil, fmt.Errorf("open sock_diag socket: not implemented on %s", runtime.GOOS)
}

// Close does nothing.
func (c *Conn) Close() error { return nil }

// Lookup finds nothing.
func (c *Conn) Lookup(proto uint8, local, remote netip.AddrPort) (uint32, bool, error) {
	return 0, false, nil
}

// Listener finds nothing.
func (c *Conn) Listener(local netip.AddrPort) (uint32, bool, error) {
	return 0, false, nil
}

// Socket finds nothing.
func (c *Conn) Socket(proto uint8, local, remote netip.AddrPort) (Socket, bool, error) {
	return Socket{}, false, nil
}
