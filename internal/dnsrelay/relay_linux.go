package dnsrelay

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// bindToDevice restricts a listening socket to Interface before it is
// bound (socket(7) SO_BINDTODEVICE). The kernel's socket lookup then skips
// it for packets whose input device is another (inet_bound_dev_eq), for
// UDP and for TCP listeners alike.
func (c *Config) bindToDevice(network, address string, rc syscall.RawConn) error {
	if c.Interface == "" {
		return nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, c.Interface)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("bind to device %s: %w", c.Interface, os.NewSyscallError("setsockopt", serr))
	}
	return nil
}
