package rtnl

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrNotUplink is matched (errors.Is) by Uplink's errors for a device that
// exists but cannot carry a run's traffic out of the host.
var ErrNotUplink = errors.New("not an uplink")

// notUplink is an ErrNotUplink with the reason.
type notUplink struct{ msg string }

func (e *notUplink) Error() string        { return e.msg }
func (e *notUplink) Is(target error) bool { return target == ErrNotUplink }

// Plan is the addressing of one run.
type Plan struct {
	// HostIf is the host end of the veth; PeerIf the end in the program's
	// namespace.
	HostIf, PeerIf string
	// HostAddr (the gateway) and PeerAddr share an IPv4 /31.
	HostAddr, PeerAddr netip.Prefix
	// HostAddr6 and PeerAddr6 share an IPv6 /64; zero when IPv6 is off.
	HostAddr6, PeerAddr6 netip.Prefix

	// claim holds the subnets against other runs (Reserve's plans only);
	// Setup hands it to the Link.
	claim *subnetClaim
}

// Config tunes Reserve. A nil *Config means defaults.
type Config struct {
	// Pool is where IPv4 /31s are taken from (default DefaultPool).
	Pool netip.Prefix
	// Pool6 is a /48 whose /64s are used for IPv6 (default DefaultPool6).
	Pool6 netip.Prefix
	// IPv6 plans IPv6 addresses too. Reserve turns it on when the host
	// has an IPv6 default route and the Config is nil.
	IPv6 bool
}

// Default address pools: parts of the private ranges that home and office
// networks rarely use.
var (
	DefaultPool  = netip.MustParsePrefix("10.213.0.0/16")
	DefaultPool6 = netip.MustParsePrefix("fd6e:7374:7261::/48")
)

// pickSubnet returns the first /31 of pool that overlaps none of used, and
// its index within the pool.
func pickSubnet(pool netip.Prefix, used []netip.Prefix) (netip.Prefix, int, error) {
	if !pool.Addr().Is4() || pool.Bits() > 31 {
		return netip.Prefix{}, 0, fmt.Errorf("address pool %s is not an IPv4 prefix of at most /31", pool)
	}
	n := 1 << (31 - pool.Bits())
	a := pool.Masked().Addr()
	for i := 0; i < n; i++ {
		p := netip.PrefixFrom(a, 31)
		if !overlapsAny(p, used) {
			return p, i, nil
		}
		a = a.Next().Next()
	}
	return netip.Prefix{}, 0, fmt.Errorf("address pool %s is exhausted: every /31 overlaps an address or route of the host", pool)
}

// subnet6 returns the index-th /64 of a /48 pool.
func subnet6(pool netip.Prefix, index int) netip.Prefix {
	b := pool.Masked().Addr().As16()
	b[6], b[7] = byte(index>>8), byte(index)
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.Bits() > 0 && p.Overlaps(u) {
			return true
		}
	}
	return false
}

// planFor builds the plan of subnet sub (a /31) with index idx.
func planFor(sub netip.Prefix, idx int, hostIf string, cfg Config) Plan {
	gw := sub.Addr()
	p := Plan{
		HostIf:   hostIf,
		PeerIf:   "eth0",
		HostAddr: netip.PrefixFrom(gw, 31),
		PeerAddr: netip.PrefixFrom(gw.Next(), 31),
	}
	if cfg.IPv6 {
		s6 := subnet6(cfg.Pool6, idx)
		h := s6.Addr().Next()
		p.HostAddr6 = netip.PrefixFrom(h, 64)
		p.PeerAddr6 = netip.PrefixFrom(h.Next(), 64)
	}
	return p
}

// isHostIfName tells whether name has the form hostIfName gives, so that
// a veth of that name is (most likely) another run's host end.
func isHostIfName(name string) bool {
	rest, ok := strings.CutPrefix(name, "nsn")
	if !ok {
		return false
	}
	pid, n, ok := strings.Cut(rest, "x")
	if !ok || pid == "" {
		return false
	}
	for _, c := range pid + n { // n may be cut short, even empty
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// hostIfName is the host end's name: "nsn", the pid in base 36 and a
// counter, at most 15 bytes (IFNAMSIZ-1).
func hostIfName(pid, n int) string {
	s := "nsn" + strconv.FormatInt(int64(pid), 36) + "x" + strconv.FormatInt(int64(n), 36)
	if len(s) > 15 {
		s = s[:15]
	}
	return s
}
