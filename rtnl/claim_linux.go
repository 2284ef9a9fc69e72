package rtnl

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// subnetClaim holds a run's subnets against every other run on the host:
// one abstract unix socket per subnet, bound to a name made of it, in the
// host's network namespace. The abstract namespace belongs to the network
// namespace (net/unix/af_unix.c: unix_bind_abstract looks the name up in
// sock_net's table) and bind(2) fails with EADDRINUSE while any process
// holds the name, so two runs can never hold one subnet, whatever a dump
// of addresses shows. The kernel frees the names when the sockets close,
// including when the process dies by SIGKILL: nothing outlives the run.
type subnetClaim struct {
	mu    sync.Mutex
	fds   []int
	owned atomic.Bool // a Link took it over
}

// errClaimed is returned by claimSubnets when another process holds one
// of the subnets.
var errClaimed = errors.New("subnet held by another run")

// claimName is the abstract socket name that stands for p.
func claimName(p netip.Prefix) string {
	return "nsntrace/subnet/" + p.Masked().String()
}

// claimSubnets claims every valid prefix of ps, or none of them.
func claimSubnets(ps ...netip.Prefix) (*subnetClaim, error) {
	c := &subnetClaim{}
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			c.release()
			return nil, fmt.Errorf("claim subnet %s: %w", p, err)
		}
		c.fds = append(c.fds, fd)
		// x/sys/unix turns the leading @ into the NUL byte that makes
		// the name abstract (unix(7)).
		err = unix.Bind(fd, &unix.SockaddrUnix{Name: "@" + claimName(p)})
		if errors.Is(err, unix.EADDRINUSE) {
			c.release()
			return nil, errClaimed
		}
		if err != nil {
			c.release()
			return nil, fmt.Errorf("claim subnet %s: %w", p, err)
		}
	}
	return c, nil
}

// own marks the claim as taken over by a Link. It is nil-safe.
func (c *subnetClaim) own() {
	if c != nil {
		c.owned.Store(true)
	}
}

// release gives the subnets back. It is idempotent and nil-safe.
func (c *subnetClaim) release() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, fd := range c.fds {
		unix.Close(fd)
	}
	c.fds = nil
}

// isOwned reports whether a Link took the claim over. It is nil-safe.
func (c *subnetClaim) isOwned() bool { return c != nil && c.owned.Load() }
