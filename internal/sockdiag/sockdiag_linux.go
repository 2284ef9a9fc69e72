//go:build linux

package sockdiag

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Conn is a NETLINK_SOCK_DIAG socket in one network namespace. It is not
// safe for concurrent use.
type Conn struct {
	c *netlink.Conn
}

// Open opens a sock_diag socket in the network namespace netns (a file
// descriptor of it; 0 or less: the caller's thread's namespace). The
// socket is close-on-exec (mdlayher/netlink opens every socket so).
func Open(netns int) (*Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, &netlink.Config{NetNS: max(netns, 0)})
	if err != nil {
		return nil, fmt.Errorf("open sock_diag socket: %w", err)
	}
	return &Conn{c: c}, nil
}

// Close closes the socket; it may be called more than once.
func (c *Conn) Close() error {
	if c.c == nil {
		return nil
	}
	err := c.c.Close()
	c.c = nil
	return err
}

// Lookup returns the inode of the socket that owns the proto (ProtoTCP or
// ProtoUDP) connection from local to remote, as the program's namespace
// sees it, or ok false if there is none with an inode: gone already, or a
// TCP request or TIME_WAIT socket. For TCP with no connected socket, the
// kernel answers with the listener on local, which is what an inbound SYN
// reaches. Addresses of different families, or a protocol without
// sockets, are not found.
func (c *Conn) Lookup(proto uint8, local, remote netip.AddrPort) (inode uint32, ok bool, err error) {
	s, ok, err := c.Socket(proto, local, remote)
	return s.Inode, ok, err
}

// Listener returns the inode of the TCP socket listening on local: the
// socket an inbound SYN to local reaches, whatever became of the
// connection since (accepted, closed, in TIME_WAIT). The request names no
// remote end, so that no connected socket matches and the kernel's lookup
// goes on to the listeners.
func (c *Conn) Listener(local netip.AddrPort) (inode uint32, ok bool, err error) {
	none := netip.IPv4Unspecified()
	if local.Addr().Unmap().Is6() {
		none = netip.IPv6Unspecified()
	}
	return c.Lookup(ProtoTCP, local, netip.AddrPortFrom(none, 0))
}

// Socket is Lookup with all the kernel said of the socket.
func (c *Conn) Socket(proto uint8, local, remote netip.AddrPort) (Socket, bool, error) {
	if c.c == nil {
		return Socket{}, false, fmt.Errorf("sock_diag lookup: %w", os.ErrClosed)
	}
	req, ok := request(proto, local, remote)
	if !ok {
		return Socket{}, false, nil
	}
	msgs, err := c.c.Execute(netlink.Message{
		Header: netlink.Header{Type: sockDiagByFamily, Flags: netlink.Request},
		Data:   req[:],
	})
	switch {
	case errors.Is(err, unix.ENOENT):
		return Socket{}, false, nil
	case err != nil:
		return Socket{}, false, fmt.Errorf("sock_diag lookup %v %v: %w", local, remote, err)
	}
	for _, m := range msgs {
		if m.Header.Type != sockDiagByFamily {
			continue
		}
		s, err := parseReply(m.Data)
		if err != nil {
			return Socket{}, false, fmt.Errorf("sock_diag lookup %v %v: %w", local, remote, err)
		}
		return s, s.Inode != 0, nil
	}
	return Socket{}, false, nil
}
