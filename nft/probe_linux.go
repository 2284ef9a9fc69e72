package nft

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/kfeature"
)

// MissingError says which kernel feature nsntrace needs and lacks, and the
// kernel option that provides it.
type MissingError = kfeature.MissingError

// features is what the kernel's nf_tables offers, found out by asking it
// (probe), never from its version number.
type features struct {
	// owner: NFT_TABLE_F_OWNER (Linux 5.12). Without it a table outlives
	// a killed nsntrace, and a reaper process deletes it.
	owner bool
	// inetNAT: nat chains in inet tables (Linux 5.2). Without it the run
	// gets an ip table and, with IPv6, an ip6 table.
	inetNAT bool
}

// forceFeatures, when set by a test, replaces probing: it lets the tests
// take the old kernels' path on a new kernel.
var forceFeatures *features

// families lists the table families a run installs (NFPROTO_*).
func (f features) families(v6 bool) []byte {
	if f.inetNAT {
		return []byte{unix.NFPROTO_INET}
	}
	if v6 {
		return []byte{unix.NFPROTO_IPV4, unix.NFPROTO_IPV6}
	}
	return []byte{unix.NFPROTO_IPV4}
}

// probe asks the kernel, with batches that create and delete a throwaway
// table in one transaction (so nothing is left whatever the answer),
// whether it takes the owner flag and nat chains in inet tables. The owner
// flag is asked alone: after a failed NEWTABLE the DELTABLE fails too, and
// the batch's answer is then that ENOENT. An owned table goes with our
// socket in any case.
//
// The kernel's answers (net/netfilter/nf_tables_api.c): before 5.12,
// nf_tables_newtable refuses any flag but NFT_TABLE_F_DORMANT with EINVAL
// (since, unknown flags are EOPNOTSUPP); a chain type the family does not
// have (nat in inet before 5.2) is ENOENT from the chain type lookup, or
// EOPNOTSUPP.
func probe(conn *netlink.Conn, name string) (features, error) {
	if forceFeatures != nil {
		return *forceFeatures, nil
	}
	var f features
	name += "-probe"
	try := func(fam byte, owner bool, chains []ChainSpec) error {
		msgs, err := tableBatch(fam, name, owner, nil, chains)
		if err != nil {
			return err
		}
		return send(conn, append(msgs, delTableMsg(fam, name)))
	}
	msgs, err := tableBatch(unix.NFPROTO_INET, name, true, nil, nil)
	if err != nil {
		return f, err
	}
	err = send(conn, msgs)
	switch {
	case err == nil:
		f.owner = true
		if err := deleteTables(conn, []tableRef{{unix.NFPROTO_INET, name}}); err != nil {
			return f, fmt.Errorf("probe nf_tables: %w", err)
		}
	case errors.Is(err, unix.EINVAL):
		if err := try(unix.NFPROTO_INET, false, nil); err != nil {
			return f, noNFTables(err)
		}
	default:
		return f, noNFTables(err)
	}
	nat := []ChainSpec{{Name: "postrouting", Type: "nat", Hook: unix.NF_INET_POST_ROUTING, Priority: 100}}
	err = try(unix.NFPROTO_INET, f.owner, nat)
	switch {
	case err == nil:
		f.inetNAT = true
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP):
		if err := try(unix.NFPROTO_IPV4, f.owner, nat); err != nil {
			return f, fmt.Errorf("probe nf_tables: %w", &MissingError{Feature: "nf_tables NAT for IPv4",
				Config: "CONFIG_NFT_NAT and CONFIG_NFT_MASQ; before Linux 5.1 CONFIG_NFT_CHAIN_NAT_IPV4 and CONFIG_NFT_MASQ_IPV4", Err: err})
		}
	default:
		return f, fmt.Errorf("probe nf_tables: %w", err)
	}
	return f, nil
}

// noNFTables explains a failure to create even a plain table.
func noNFTables(err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) ||
		errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("probe nf_tables: %w", &MissingError{Feature: "nf_tables with inet tables", Config: "CONFIG_NF_TABLES and CONFIG_NF_TABLES_INET", Err: err})
	}
	return fmt.Errorf("probe nf_tables: %w", err)
}

// tableRef names one table of a run.
type tableRef struct {
	family byte // NFPROTO_*
	name   string
}

func delTableMsg(fam byte, name string) netlink.Message {
	b, _ := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_TABLE_NAME, Data: cstr(name)}}) // a name cannot fail to marshal
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELTABLE), Flags: netlink.Request},
		Data:   append([]byte{fam, unix.NFNETLINK_V0, 0, 0}, b...),
	}
}

// deleteTables deletes tables, each in its own transaction, so that one
// already gone (ENOENT) does not keep the others.
func deleteTables(conn *netlink.Conn, tables []tableRef) error {
	var errs []error
	for _, t := range tables {
		if err := send(conn, []netlink.Message{delTableMsg(t.family, t.name)}); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete nftables table %s %s: %w", familyName(nftables.TableFamily(t.family)), t.name, err))
		}
	}
	return errors.Join(errs...)
}

// sweepTables deletes the tables of runs whose process is gone (names
// nsntrace-PID and nsntrace_PID). Only kernels without the owner flag
// keep such tables, when the reaper was killed with its run.
func sweepTables() ([]string, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("dial nftables: %w", err)
	}
	defer c.CloseLasting()
	tables, err := c.ListTables()
	if absent(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list nftables tables: %w", err)
	}
	var done []string
	for _, t := range tables {
		rest, ok := strings.CutPrefix(t.Name, "nsntrace")
		if !ok || len(rest) < 2 || (rest[0] != '-' && rest[0] != '_') {
			continue
		}
		pid, err := strconv.Atoi(rest[1:])
		if err != nil || alive(pid) || pid == os.Getpid() {
			continue
		}
		c.DelTable(t)
		if err := c.Flush(); err != nil {
			return done, fmt.Errorf("delete nftables table %s: %w", t.Name, err)
		}
		done = append(done, fmt.Sprintf("removed table %s %s of a crashed run", familyName(t.Family), t.Name))
	}
	return done, nil
}
