package rtnl

import (
	"encoding"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/jsimonetti/rtnetlink/v2/driver"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/kfeature"
	"github.com/nsntrace/nsntrace/internal/rundir"
)

// lockPath is the host-wide lock taken while a run's names and subnet are
// chosen and configured.
var lockPath = rundir.Path("lock")

var nameCounter atomic.Uint32

// Uplink returns the interface named name, or, when name is empty, the
// device of the host's default route (IPv4 first, then IPv6). A loopback
// device, one that is down, or the host end of a run's veth is refused
// (ErrNotUplink): the masquerade rule matches on the uplink, so packets
// leaving by any other device would go out un-NATed.
func Uplink(name string) (*net.Interface, error) {
	c, err := rtnetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("dial rtnetlink: %w", err)
	}
	defer c.Close()
	if name != "" {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("device %q does not exist", name)
		}
		return ifi, checkUplink(c, ifi)
	}
	ifi, err := defaultDevice(c)
	if err != nil {
		return nil, err
	}
	return ifi, checkUplink(c, ifi)
}

// checkUplink refuses a device that cannot be the uplink.
func checkUplink(c *rtnetlink.Conn, ifi *net.Interface) error {
	switch {
	case ifi.Flags&net.FlagLoopback != 0:
		return &notUplink{fmt.Sprintf("device %s is the loopback device, which never leaves the host", ifi.Name)}
	case ifi.Flags&net.FlagUp == 0:
		return &notUplink{fmt.Sprintf("device %s is down", ifi.Name)}
	case isHostIfName(ifi.Name):
		l, err := c.Link.Get(uint32(ifi.Index))
		if err != nil {
			return fmt.Errorf("read device %s: %w", ifi.Name, err)
		}
		if l.Attributes != nil && l.Attributes.Info != nil && l.Attributes.Info.Kind == "veth" {
			return &notUplink{fmt.Sprintf("device %s is the veth of another nsntrace run", ifi.Name)}
		}
	}
	return nil
}

// defaultDevice returns the device of the host's default route.
func defaultDevice(c *rtnetlink.Conn) (*net.Interface, error) {
	routes, err := c.Route.List()
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		for _, r := range routes {
			if r.Family != fam || r.DstLength != 0 || r.Type != unix.RTN_UNICAST || !mainTable(r) {
				continue
			}
			idx := r.Attributes.OutIface
			if idx == 0 && len(r.Attributes.Multipath) > 0 {
				idx = r.Attributes.Multipath[0].Hop.IfIndex
			}
			if idx == 0 {
				continue
			}
			return net.InterfaceByIndex(int(idx))
		}
	}
	return nil, errors.New("no default route")
}

func mainTable(r rtnetlink.RouteMessage) bool {
	t := uint32(r.Table)
	if r.Attributes.Table != 0 {
		t = r.Attributes.Table
	}
	return t == unix.RT_TABLE_MAIN
}

// hasDefault6 reports whether the host has an IPv6 default route.
func hasDefault6(routes []rtnetlink.RouteMessage) bool {
	for _, r := range routes {
		if r.Family == unix.AF_INET6 && r.DstLength == 0 && r.Type == unix.RTN_UNICAST && mainTable(r) {
			return true
		}
	}
	return false
}

// Reserve takes the host-wide lock and plans a run: unique interface names
// and a subnet overlapping no address or route of the host and claimed
// (claim_linux.go) by no other run. The returned func releases the lock,
// and the claim too unless Setup took it over; call it once Setup has
// returned, so that the next run sees this run's addresses.
func Reserve(cfg *Config) (Plan, func(), error) {
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	if !c.Pool.IsValid() {
		c.Pool = DefaultPool
	}
	if !c.Pool6.IsValid() {
		c.Pool6 = DefaultPool6
	}
	unlock, err := lock()
	if err != nil {
		return Plan{}, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unlock()
		}
	}()
	addrs, routes, err := hostAddressing()
	if err != nil {
		return Plan{}, nil, err
	}
	if cfg == nil {
		c.IPv6 = hasDefault6(routes)
	}
	var name string
	for {
		name = hostIfName(os.Getpid(), int(nameCounter.Add(1)))
		if _, err := net.InterfaceByName(name); err != nil {
			break
		}
	}
	used := usedPrefixes(addrs, routes)
	for {
		sub, idx, err := pickSubnet(c.Pool, used)
		if err != nil {
			return Plan{}, nil, err
		}
		p := planFor(sub, idx, name, c)
		p.claim, err = claimSubnets(p.HostAddr, p.HostAddr6)
		if errors.Is(err, errClaimed) {
			// Another run holds it, though the dumps did not show its
			// addresses: pass over it.
			used = append(used, sub)
			continue
		}
		if err != nil {
			return Plan{}, nil, err
		}
		ok = true
		return p, func() {
			unlock()
			if !p.claim.isOwned() {
				p.claim.release()
			}
		}, nil
	}
}

// hostAddressing dumps the addresses and routes of the host. A dump that
// the kernel marks interrupted (NLM_F_DUMP_INTR: the tables changed while
// it was read, and it may have missed entries) is done again.
func hostAddressing() ([]rtnetlink.AddressMessage, []rtnetlink.RouteMessage, error) {
	conn, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("dial rtnetlink: %w", err)
	}
	defer conn.Close()
	addrs, err := dump[rtnetlink.AddressMessage](conn, unix.RTM_GETADDR, &rtnetlink.AddressMessage{})
	if err != nil {
		return nil, nil, fmt.Errorf("list addresses: %w", err)
	}
	routes, err := dump[rtnetlink.RouteMessage](conn, unix.RTM_GETROUTE, &rtnetlink.RouteMessage{})
	if err != nil {
		return nil, nil, fmt.Errorf("list routes: %w", err)
	}
	return addrs, routes, nil
}

// dumpTries bounds the dumps of one table: the changes that interrupt
// one come in bursts (a run starting or ending), and after that many the
// last dump is used anyway, the claims keeping runs apart regardless.
const dumpTries = 10

// dump sends the dump request typ with header req and decodes each reply
// of the first dump that was not interrupted into a T.
func dump[T any, PT interface {
	*T
	encoding.BinaryUnmarshaler
}](conn *netlink.Conn, typ netlink.HeaderType, req encoding.BinaryMarshaler) ([]T, error) {
	b, err := req.MarshalBinary()
	if err != nil {
		return nil, err
	}
	for try := 1; ; try++ {
		msgs, err := conn.Execute(netlink.Message{
			Header: netlink.Header{Type: typ, Flags: netlink.Request | netlink.Dump},
			Data:   b,
		})
		if err != nil {
			return nil, err
		}
		if try < dumpTries && interrupted(msgs) {
			continue
		}
		out := make([]T, len(msgs))
		for i, m := range msgs {
			if err := PT(&out[i]).UnmarshalBinary(m.Data); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
}

// interrupted reports whether the kernel flagged any message of a dump
// NLM_F_DUMP_INTR.
func interrupted(msgs []netlink.Message) bool {
	for _, m := range msgs {
		if m.Header.Flags&netlink.DumpInterrupted != 0 {
			return true
		}
	}
	return false
}

func usedPrefixes(addrs []rtnetlink.AddressMessage, routes []rtnetlink.RouteMessage) []netip.Prefix {
	var used []netip.Prefix
	for _, a := range addrs {
		if a.Attributes == nil {
			continue
		}
		for _, ip := range []net.IP{a.Attributes.Address, a.Attributes.Local} {
			if ad, ok := netip.AddrFromSlice(ip); ok {
				used = append(used, netip.PrefixFrom(ad.Unmap(), int(a.PrefixLength)).Masked())
			}
		}
	}
	for _, r := range routes {
		if r.DstLength == 0 {
			continue // a default route overlaps everything and blocks nothing
		}
		if ad, ok := netip.AddrFromSlice(r.Attributes.Dst); ok {
			used = append(used, netip.PrefixFrom(ad.Unmap(), int(r.DstLength)).Masked())
		}
	}
	return used
}

// lock takes an exclusive flock(2) on lockPath.
func lock() (func(), error) {
	if err := os.MkdirAll(rundir.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create lock directory (nsntrace needs a writable /run): %w", err)
	}
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, os.NewSyscallError("flock", err)
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }, nil // closing releases the flock
}

// Link is the host end of a run's veth pair.
type Link struct {
	conn  *rtnetlink.Conn
	index uint32
	name  string
	lo    uint32 // lo's index in the program's namespace
	claim *subnetClaim
	once  sync.Once
	err   error
}

// HostIndex is the interface index of the host end.
func (l *Link) HostIndex() int { return int(l.index) }

// LoopbackIndex is the interface index of lo in the program's namespace
// (LOOPBACK_IFINDEX, 1, on every kernel so far; looked up, not assumed).
func (l *Link) LoopbackIndex() int { return int(l.lo) }

// Setup creates the veth pair of plan with the peer directly in the
// network namespace childNetNS (an fd), and configures both ends.
func Setup(p Plan, childNetNS int) (_ *Link, err error) {
	conn, err := rtnetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("dial rtnetlink: %w", err)
	}
	defer func() {
		if err != nil {
			conn.Close()
		}
	}()
	err = conn.Link.New(&rtnetlink.LinkMessage{
		Family: unix.AF_UNSPEC,
		Attributes: &rtnetlink.LinkAttributes{
			Name: p.HostIf,
			Info: &rtnetlink.LinkInfo{Kind: "veth", Data: &driver.Veth{
				PeerInfo: &rtnetlink.LinkMessage{
					Family: unix.AF_UNSPEC,
					Attributes: &rtnetlink.LinkAttributes{
						Name:  p.PeerIf,
						NetNS: rtnetlink.NetNSForFD(uint32(childNetNS)),
					},
				},
			}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create veth %s: %w", p.HostIf, kfeature.Veth(err))
	}
	ifi, err := net.InterfaceByName(p.HostIf)
	if err != nil {
		return nil, fmt.Errorf("find veth %s: %w", p.HostIf, err)
	}
	// l, not a named result: an error return sets that to nil before
	// the deferred delete below reads it.
	l := &Link{conn: conn, index: uint32(ifi.Index), name: p.HostIf}
	defer func() {
		if err != nil {
			conn.Link.Delete(l.index) // best effort: the error below says what failed
		}
	}()
	if err := configure(conn, l.index, p.HostAddr, p.HostAddr6); err != nil {
		return nil, fmt.Errorf("configure %s: %w", p.HostIf, err)
	}

	in, err := rtnetlink.Dial(&netlink.Config{NetNS: childNetNS})
	if err != nil {
		return nil, fmt.Errorf("dial rtnetlink in the program's namespace: %w", err)
	}
	defer in.Close()
	links, err := in.Link.List()
	if err != nil {
		return nil, fmt.Errorf("list links in the program's namespace: %w", err)
	}
	var lo, peer uint32
	for _, m := range links {
		if m.Attributes == nil {
			continue
		}
		switch m.Attributes.Name {
		case "lo":
			lo = m.Index
		case p.PeerIf:
			peer = m.Index
		}
	}
	if lo == 0 || peer == 0 {
		return nil, fmt.Errorf("configure the program's namespace: lo or %s missing", p.PeerIf)
	}
	l.lo = lo
	if err := up(in, lo); err != nil {
		return nil, fmt.Errorf("set lo up: %w", err)
	}
	if err := configure(in, peer, p.PeerAddr, p.PeerAddr6); err != nil {
		return nil, fmt.Errorf("configure %s: %w", p.PeerIf, err)
	}
	if err := defaultRoute(in, peer, p.HostAddr.Addr()); err != nil {
		return nil, fmt.Errorf("add default route: %w", err)
	}
	if p.HostAddr6.IsValid() {
		if err := defaultRoute(in, peer, p.HostAddr6.Addr()); err != nil {
			return nil, fmt.Errorf("add IPv6 default route: %w", err)
		}
	}
	l.claim = p.claim
	l.claim.own()
	return l, nil
}

func up(c *rtnetlink.Conn, index uint32) error {
	return c.Link.Set(&rtnetlink.LinkMessage{Family: unix.AF_UNSPEC, Index: index, Flags: unix.IFF_UP, Change: unix.IFF_UP})
}

// configure adds the addresses to the link and brings it up.
func configure(c *rtnetlink.Conn, index uint32, v4, v6 netip.Prefix) error {
	for _, p := range []netip.Prefix{v4, v6} {
		if !p.IsValid() {
			continue
		}
		fam, flags := uint8(unix.AF_INET), uint32(0)
		if p.Addr().Is6() {
			// No duplicate address detection: the link has one peer,
			// planned by us, and DAD would delay the first packet.
			fam, flags = unix.AF_INET6, unix.IFA_F_NODAD
		}
		ip := net.IP(p.Addr().AsSlice())
		err := c.Address.New(&rtnetlink.AddressMessage{
			Family:       fam,
			PrefixLength: uint8(p.Bits()),
			Scope:        unix.RT_SCOPE_UNIVERSE,
			Index:        index,
			Attributes:   &rtnetlink.AddressAttributes{Address: ip, Local: ip, Flags: flags},
		})
		if err != nil {
			return fmt.Errorf("add address %s: %w", p, err)
		}
	}
	return up(c, index)
}

func defaultRoute(c *rtnetlink.Conn, index uint32, gw netip.Addr) error {
	fam := uint8(unix.AF_INET)
	if gw.Is6() {
		fam = unix.AF_INET6
	}
	return c.Route.Add(&rtnetlink.RouteMessage{
		Family:     fam,
		Table:      unix.RT_TABLE_MAIN,
		Protocol:   unix.RTPROT_BOOT,
		Scope:      unix.RT_SCOPE_UNIVERSE,
		Type:       unix.RTN_UNICAST,
		Attributes: rtnetlink.RouteAttributes{Gateway: net.IP(gw.AsSlice()), OutIface: index},
	})
}

// Close deletes the host end of the veth (and so the pair). It is
// idempotent, and not an error when the kernel already removed the pair
// because the program's namespace is gone.
func (l *Link) Close() error {
	l.once.Do(func() {
		err := l.conn.Link.Delete(l.index)
		if err != nil && !errors.Is(err, unix.ENODEV) {
			l.err = fmt.Errorf("delete veth %s: %w", l.name, err)
		}
		l.conn.Close()
		l.claim.release() // the addresses went with the veth
	})
	return l.err
}
