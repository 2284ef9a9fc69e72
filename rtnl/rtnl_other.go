//go:build !linux

package rtnl

import (
	"fmt"
	"net"
	"runtime"
)

var errOS = fmt.Errorf("rtnl: not implemented on %s", runtime.GOOS)

type subnetClaim struct{}

// Link is the host end of a run's veth pair; it exists only on Linux.
type Link struct{}

// HostIndex is 0 off Linux.
func (l *Link) HostIndex() int { return 0 }

// LoopbackIndex is 0 off Linux.
func (l *Link) LoopbackIndex() int { return 0 }

// Close does nothing off Linux.
func (l *Link) Close() error { return nil }

// Uplink is not implemented off Linux.
func Uplink(name string) (*net.Interface, error) { return nil, errOS }

// Reserve is not implemented off Linux.
func Reserve(cfg *Config) (Plan, func(), error) { return Plan{}, nil, errOS }

// Setup is not implemented off Linux.
func Setup(p Plan, childNetNS int) (*Link, error) { return nil, errOS }
