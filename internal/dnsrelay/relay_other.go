//go:build !linux

package dnsrelay

import (
	"fmt"
	"runtime"
	"syscall"
)

// bindToDevice: SO_BINDTODEVICE is Linux's; elsewhere a relay restricted to
// an interface cannot be made, rather than silently serving every one.
func (c *Config) bindToDevice(network, address string, rc syscall.RawConn) error {
	if c.Interface == "" {
		return nil
	}
	return fmt.Errorf("bind to device %s: not implemented on %s", c.Interface, runtime.GOOS)
}
