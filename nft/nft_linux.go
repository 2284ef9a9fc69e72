package nft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/kfeature"
)

// nftTableFOwner is NFT_TABLE_F_OWNER (linux/netfilter/nf_tables.h, 5.12).
const nftTableFOwner = 0x2

// Table is one run's installed firewall state. Close removes it.
type Table struct {
	conn    *netlink.Conn // owns the table(s) where the kernel has the owner flag
	feat    features
	tables  []tableRef // one inet table, or ip and ip6 tables before 5.2
	reaper  *reaper    // deletes the tables if we die, where there is no owner flag
	name    string
	veth    string
	uplink  string
	tag     []byte
	foreign []foreignChain
	fwd     *forwarding
	publish []Port
	// egress says the table has the sets of an enforced policy; mu
	// serializes Grant's use of conn.
	egress bool
	mu     sync.Mutex

	once sync.Once
	err  error
}

type foreignChain struct {
	table *nftables.Table
	chain string
}

// Install creates the run's owned table and, where another table's forward
// chain drops by default, accept rules for the veth there; it enables IP
// forwarding for the run if it is off.
func Install(s Spec) (_ *Table, err error) {
	if s.Table == "" {
		s.Table = TableName(os.Getpid())
	}
	chains, err := s.Chains()
	if err != nil {
		return nil, fmt.Errorf("install nftables table %s: %w", s.Table, err)
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("dial netfilter netlink: %w", kfeature.Netfilter(err))
	}
	// t, not the named result: an error return sets that to nil before
	// this deferred Close runs.
	t := &Table{conn: conn, name: s.Table, veth: s.Veth, uplink: s.Uplink, tag: []byte("nsntrace:" + strconv.Itoa(os.Getpid())), publish: s.Publish, egress: s.Egress != nil}
	defer func() {
		if err != nil {
			t.Close() // best effort: the install error is what to report
		}
	}()
	t.feat, err = probe(conn, s.Table)
	if err != nil {
		return nil, err
	}
	var msgs []netlink.Message
	for _, fam := range t.feat.families(s.Subnet6.IsValid()) {
		fc, err := s.familyChains(fam, chains)
		if err != nil {
			return nil, err
		}
		m, err := tableBatch(fam, s.Table, t.feat.owner, s.sets(), fc)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m...)
		t.tables = append(t.tables, tableRef{fam, s.Table})
	}
	if !t.feat.owner {
		// Before the tables exist: a kill -9 right after creating them
		// must find the reaper already waiting.
		if t.reaper, err = startReaper(t.tables); err != nil {
			return nil, err
		}
	}
	if err := send(conn, msgs); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("install nftables table %s: %w", s.Table, &MissingError{
				Feature: "nf_tables masquerade", Config: "CONFIG_NFT_MASQ; before Linux 5.1 also CONFIG_NFT_MASQ_IPV4 and CONFIG_NFT_MASQ_IPV6", Err: err})
		}
		return nil, fmt.Errorf("install nftables table %s: %w", s.Table, err)
	}
	if err := t.openForeignDrops(); err != nil {
		return nil, err
	}
	t.fwd, err = enableForwarding(s.Subnet6.IsValid())
	if err != nil {
		return nil, err
	}
	return t, nil
}

// tableBatch builds NEWTABLE (owned if owner), NEWSET, NEWCHAIN and NEWRULE
// messages for a table of family fam (NFPROTO_*).
func tableBatch(fam byte, name string, owner bool, sets []setSpec, chains []ChainSpec) ([]netlink.Message, error) {
	var msgs []netlink.Message
	add := func(typ int, attrs []netlink.Attribute) error {
		b, err := netlink.MarshalAttributes(attrs)
		if err != nil {
			return err
		}
		flags := netlink.Request | netlink.Create | netlink.Excl
		if typ == unix.NFT_MSG_NEWRULE {
			// Without NLM_F_APPEND a new rule goes to the head of its
			// chain (nf_tables_newrule), reversing the Spec's order, which
			// matters once a chain holds drops after accepts.
			flags |= netlink.Append
		}
		msgs = append(msgs, netlink.Message{
			Header: netlink.Header{
				Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ),
				Flags: flags,
			},
			Data: append([]byte{fam, unix.NFNETLINK_V0, 0, 0}, b...),
		})
		return nil
	}
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	table := []netlink.Attribute{{Type: unix.NFTA_TABLE_NAME, Data: cstr(name)}}
	if owner {
		table = append(table, netlink.Attribute{Type: unix.NFTA_TABLE_FLAGS, Data: be32(nftTableFOwner)})
	}
	if err := add(unix.NFT_MSG_NEWTABLE, table); err != nil {
		return nil, err
	}
	sm, err := setMessages(fam, name, sets) // before the rules that look them up
	if err != nil {
		return nil, err
	}
	msgs = append(msgs, sm...)
	for _, c := range chains {
		hook, err := netlink.MarshalAttributes([]netlink.Attribute{
			{Type: unix.NFTA_HOOK_HOOKNUM, Data: be32(c.Hook)},
			{Type: unix.NFTA_HOOK_PRIORITY, Data: be32(uint32(c.Priority))},
		})
		if err != nil {
			return nil, err
		}
		if err := add(unix.NFT_MSG_NEWCHAIN, []netlink.Attribute{
			{Type: unix.NFTA_CHAIN_TABLE, Data: cstr(name)},
			{Type: unix.NFTA_CHAIN_NAME, Data: cstr(c.Name)},
			{Type: unix.NLA_F_NESTED | unix.NFTA_CHAIN_HOOK, Data: hook},
			{Type: unix.NFTA_CHAIN_POLICY, Data: be32(1)}, // NF_ACCEPT
			{Type: unix.NFTA_CHAIN_TYPE, Data: cstr(c.Type)},
		}); err != nil {
			return nil, err
		}
		for _, r := range c.Rules {
			var elems []netlink.Attribute
			for _, e := range r {
				b, err := expr.Marshal(fam, e)
				if err != nil {
					return nil, fmt.Errorf("marshal rule of chain %s: %w", c.Name, err)
				}
				elems = append(elems, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b})
			}
			list, err := netlink.MarshalAttributes(elems)
			if err != nil {
				return nil, err
			}
			if err := add(unix.NFT_MSG_NEWRULE, []netlink.Attribute{
				{Type: unix.NFTA_RULE_TABLE, Data: cstr(name)},
				{Type: unix.NFTA_RULE_CHAIN, Data: cstr(c.Name)},
				{Type: unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS, Data: list},
			}); err != nil {
				return nil, err
			}
		}
	}
	return msgs, nil
}

func cstr(s string) []byte { return append([]byte(s), 0) }

// send sends msgs as one nfnetlink batch and waits for the kernel's answer:
// an error for the first failing message, or the ack of the last one.
func send(conn *netlink.Conn, msgs []netlink.Message) error {
	msgs[len(msgs)-1].Header.Flags |= netlink.Acknowledge
	batch := make([]netlink.Message, 0, len(msgs)+2)
	batchHdr := func(typ int) netlink.Message {
		return netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request},
			Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES},
		}
	}
	batch = append(batch, batchHdr(unix.NFNL_MSG_BATCH_BEGIN))
	batch = append(batch, msgs...)
	batch = append(batch, batchHdr(unix.NFNL_MSG_BATCH_END))
	sent, err := conn.SendMessages(batch)
	if err != nil {
		return fmt.Errorf("send nftables batch: %w", err)
	}
	last := sent[len(sent)-2].Header.Sequence
	for {
		replies, err := conn.Receive()
		if err != nil {
			return err
		}
		for _, m := range replies {
			if m.Header.Type == netlink.Error && m.Header.Sequence == last {
				return nil
			}
		}
	}
}

// Name is the table's name.
func (t *Table) Name() string { return t.name }

// openForeignDrops inserts veth accepts (and the published ports') at the top of every other table's
// forward base chain whose policy is drop.
func (t *Table) openForeignDrops() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("dial nftables: %w", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		return fmt.Errorf("list nftables chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == t.name || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward ||
			ch.Policy == nil || *ch.Policy != nftables.ChainPolicyDrop {
			continue
		}
		for _, r := range append(ForwardAccepts(t.veth, t.uplink), PublishAccepts(t.veth, t.publish)...) {
			c.InsertRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: r, UserData: t.tag})
		}
		t.foreign = append(t.foreign, foreignChain{ch.Table, ch.Name})
	}
	if len(t.foreign) == 0 {
		return nil
	}
	if err := c.Flush(); err != nil {
		var names []string
		for _, f := range t.foreign {
			names = append(names, fmt.Sprintf("%s %s", familyName(f.table.Family), f.table.Name))
		}
		return fmt.Errorf("forwarded packets are dropped by the forward chain of table %s and adding accept rules there failed: %w", strings.Join(names, ", "), err)
	}
	return nil
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	}
	return strconv.Itoa(int(f))
}

// removeTagged deletes the rules whose user data satisfies match from every
// forward chain of the ruleset.
func removeTagged(match func(tag []byte) bool) (int, error) {
	c, err := nftables.New()
	if err != nil {
		return 0, fmt.Errorf("dial nftables: %w", err)
	}
	chains, err := c.ListChains()
	if absent(err) {
		return 0, nil // no nf_tables: no rule of ours either
	}
	if err != nil {
		return 0, fmt.Errorf("list nftables chains: %w", err)
	}
	n := 0
	for _, ch := range chains {
		if ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward {
			continue
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return 0, fmt.Errorf("list rules of chain %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			if bytes.HasPrefix(r.UserData, []byte("nsntrace:")) && match(r.UserData) {
				if err := c.DelRule(r); err != nil {
					return 0, fmt.Errorf("delete rule of chain %s: %w", ch.Name, err)
				}
				n++
			}
		}
	}
	if n == 0 {
		return 0, nil
	}
	if err := c.Flush(); err != nil {
		return 0, fmt.Errorf("delete nsntrace rules: %w", err)
	}
	return n, nil
}

// Close removes the table, the rules added to other tables' chains, and
// restores IP forwarding if this was the last run that needed it. It is
// idempotent.
func (t *Table) Close() error {
	t.once.Do(func() {
		var errs []error
		if len(t.foreign) > 0 {
			if _, err := removeTagged(func(tag []byte) bool { return bytes.Equal(tag, t.tag) }); err != nil {
				errs = append(errs, err)
			}
		}
		if !t.feat.owner {
			if err := deleteTables(t.conn, t.tables); err != nil {
				errs = append(errs, err)
			}
		}
		// Closing the owner socket makes the kernel delete owned tables.
		if err := t.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close nftables socket: %w", err))
		}
		if t.reaper != nil {
			if err := t.reaper.stop(); err != nil {
				errs = append(errs, err)
			}
		}
		if t.fwd != nil {
			if err := t.fwd.release(); err != nil {
				errs = append(errs, err)
			}
		}
		t.err = errors.Join(errs...)
	})
	return t.err
}

// Sweep removes what crashed runs left behind: rules tagged with the pid of
// a process that no longer exists, forwarding records of such processes
// (restoring the original setting when no run is left), forwarding
// records of namespaces that no longer exist, and, on kernels without the
// owner flag, tables of dead runs that their reaper did not get to (it
// was killed too). It returns one sentence for each thing it removed or
// restored. Owned tables need no sweep: the kernel deletes them with their
// socket.
func Sweep() ([]string, error) {
	var done []string
	n, err := removeTagged(func(tag []byte) bool {
		pid, err := strconv.Atoi(strings.TrimPrefix(string(tag), "nsntrace:"))
		return err == nil && !alive(pid)
	})
	if n > 0 {
		done = append(done, fmt.Sprintf("removed %d forward accept rules of crashed runs from other tables", n))
	}
	tables, terr := sweepTables()
	done = append(done, tables...)
	fw, ferr := sweepForwarding()
	return append(done, fw...), errors.Join(err, terr, ferr)
}

// absent reports whether err is the kernel's answer to a listing when it
// has no nf_tables: EINVAL from nfnetlink for a subsystem nobody
// registered (net/netfilter/nfnetlink.c, nfnetlink_rcv_msg), and
// EPROTONOSUPPORT for the socket when nfnetlink is absent too. Then
// nothing of ours can be left to sweep.
func absent(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPROTONOSUPPORT)
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
