// Package kfeature names the kernel features nsntrace needs, and says
// which one a kernel lacks when an operation fails for want of it: the
// feature and the configuration option that provides it, so that the
// user's one sentence says what to ask of the kernel, not an errno.
//
// Each check reads the kernel's answer to the operation that failed
// (never its version number): the errnos are those the kernel returns
// when the option is off or its module absent.
package kfeature

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// MissingError says which kernel feature nsntrace needs and lacks, and the
// kernel option that provides it.
type MissingError struct {
	Feature string // e.g. "nf_tables NAT"
	Config  string // e.g. "CONFIG_NFT_NAT"
	Err     error  // the kernel's answer
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("the kernel lacks %s (%s): %v", e.Feature, e.Config, e.Err)
}

func (e *MissingError) Unwrap() error { return e.Err }

// Veth explains a failure to create a veth pair: RTM_NEWLINK of a kind
// that no driver registered (not built, module absent) is EOPNOTSUPP
// (net/core/rtnetlink.c, "Unknown device type").
func Veth(err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) {
		return &MissingError{Feature: "veth pairs", Config: "CONFIG_VETH", Err: err}
	}
	return err
}

// PacketSocket explains a failure to open an AF_PACKET socket: a family
// no protocol registered is EAFNOSUPPORT (net/socket.c, __sock_create).
func PacketSocket(err error) error {
	if errors.Is(err, unix.EAFNOSUPPORT) {
		return &MissingError{Feature: "packet sockets", Config: "CONFIG_PACKET", Err: err}
	}
	return err
}

// Netfilter explains a failure to open a NETLINK_NETFILTER socket: a
// netlink protocol nobody registered is EPROTONOSUPPORT
// (net/netlink/af_netlink.c, netlink_create).
func Netfilter(err error) error {
	if errors.Is(err, unix.EPROTONOSUPPORT) {
		return &MissingError{Feature: "nf_tables", Config: "CONFIG_NETFILTER_NETLINK and CONFIG_NF_TABLES", Err: err}
	}
	return err
}

// Namespaces explains a failure to clone into new network and PID
// namespaces. Without CONFIG_NET_NS or CONFIG_PID_NS the clone flag is
// EINVAL (include/net/net_namespace.h, include/linux/pid_namespace.h);
// which one is missing shows in /proc/self/ns, which lists only the
// namespace types the kernel has (fs/proc/namespaces.c). procRoot is
// "/proc" but for tests.
func Namespaces(err error, procRoot string) error {
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	for _, ns := range []struct{ file, feature, config string }{
		{"net", "network namespaces", "CONFIG_NET_NS"},
		{"pid", "PID namespaces", "CONFIG_PID_NS"},
	} {
		if _, serr := os.Stat(filepath.Join(procRoot, "self/ns", ns.file)); errors.Is(serr, os.ErrNotExist) {
			return &MissingError{Feature: ns.feature, Config: ns.config, Err: err}
		}
	}
	return err
}
