package kfeature

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Each explanation names the option for the kernel's answer when the
// feature is missing, and leaves any other error as it was.
func TestExplanations(t *testing.T) {
	for _, c := range []struct {
		explain func(error) error
		missing error
		want    string
	}{
		{Veth, unix.EOPNOTSUPP, "the kernel lacks veth pairs (CONFIG_VETH)"},
		{PacketSocket, unix.EAFNOSUPPORT, "the kernel lacks packet sockets (CONFIG_PACKET)"},
		{Netfilter, unix.EPROTONOSUPPORT, "the kernel lacks nf_tables (CONFIG_NETFILTER_NETLINK and CONFIG_NF_TABLES)"},
	} {
		err := c.explain(fmt.Errorf("wrapped: %w", c.missing))
		var me *MissingError
		if !errors.As(err, &me) || !strings.HasPrefix(err.Error(), c.want) || !errors.Is(err, c.missing) {
			t.Errorf("%v: %v, want %q and the errno kept", c.missing, err, c.want)
		}
		other := fmt.Errorf("wrapped: %w", unix.EPERM)
		if got := c.explain(other); got != other {
			t.Errorf("EPERM became %v", got)
		}
	}
}

// Namespaces names the type /proc/self/ns does not list.
func TestNamespaces(t *testing.T) {
	for _, c := range []struct {
		has  []string
		want string
	}{
		{[]string{"pid", "mnt"}, "the kernel lacks network namespaces (CONFIG_NET_NS)"},
		{[]string{"net", "mnt"}, "the kernel lacks PID namespaces (CONFIG_PID_NS)"},
	} {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "self/ns"), 0o755)
		for _, f := range c.has {
			os.WriteFile(filepath.Join(root, "self/ns", f), nil, 0o644)
		}
		err := Namespaces(fmt.Errorf("fork/exec: %w", unix.EINVAL), root)
		if !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("with %v: %v, want %q", c.has, err, c.want)
		}
	}
	// This kernel has both: the error stays as it was.
	in := fmt.Errorf("fork/exec: %w", unix.EINVAL)
	if got := Namespaces(in, "/proc"); got != in {
		t.Errorf("on this kernel: %v", got)
	}
}

// The kernel's answers the explanations read, from this kernel: a socket
// family nobody registered (AF_ECONET, gone since Linux 3.5) and a netlink
// protocol nobody registered (31).
func TestKernelAnswers(t *testing.T) {
	if fd, err := unix.Socket(19, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); !errors.Is(err, unix.EAFNOSUPPORT) {
		if err == nil {
			unix.Close(fd)
		}
		t.Errorf("socket of an unregistered family: %v, want EAFNOSUPPORT", err)
	}
	if fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 31); !errors.Is(err, unix.EPROTONOSUPPORT) {
		if err == nil {
			unix.Close(fd)
		}
		t.Errorf("netlink socket of an unregistered protocol: %v, want EPROTONOSUPPORT", err)
	}
}
