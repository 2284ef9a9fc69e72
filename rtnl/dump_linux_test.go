package rtnl

import (
	"net"
	"slices"
	"testing"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// fakeAddrDumps is a kernel that answers address dumps: the first
// interrupted ones flagged NLM_F_DUMP_INTR and missing an address (a table
// changed while it was read), every later one whole. It counts the dumps.
func fakeAddrDumps(t *testing.T, interrupted int, dumps *int) *netlink.Conn {
	t.Helper()
	msg := func(ip string, flags netlink.HeaderFlags) netlink.Message {
		b, err := (&rtnetlink.AddressMessage{
			Family: unix.AF_INET, PrefixLength: 24, Index: 1,
			Attributes: &rtnetlink.AddressAttributes{Address: net.ParseIP(ip).To4(), Local: net.ParseIP(ip).To4()},
		}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWADDR, Flags: flags}, Data: b}
	}
	return nltest.Dial(func(reqs []netlink.Message) ([]netlink.Message, error) {
		if len(reqs) != 1 || reqs[0].Header.Type != unix.RTM_GETADDR || reqs[0].Header.Flags&netlink.Dump == 0 {
			t.Errorf("request %+v, want one address dump", reqs)
		}
		*dumps++
		reply := []netlink.Message{msg("10.1.0.1", 0), msg("10.2.0.1", 0)}
		if *dumps <= interrupted {
			reply = []netlink.Message{msg("10.1.0.1", netlink.DumpInterrupted)}
		}
		// The dump's end: NLMSG_DONE with an error code of 0, flagged
		// as the kernel flags every message of an interrupted dump.
		done := netlink.Message{Header: netlink.Header{Flags: reply[0].Header.Flags}, Data: make([]byte, 4)}
		msgs, err := nltest.Multipart(append(reply, done))
		for i := range msgs { // replies answer the request
			msgs[i].Header.Sequence, msgs[i].Header.PID = reqs[0].Header.Sequence, reqs[0].Header.PID
		}
		return msgs, err
	})
}

func dumpedAddrs(t *testing.T, conn *netlink.Conn) []string {
	t.Helper()
	msgs, err := dump[rtnetlink.AddressMessage](conn, unix.RTM_GETADDR, &rtnetlink.AddressMessage{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.Attributes.Address.String())
	}
	return got
}

// TestDumpInterruptedIsRedone: a dump the kernel flags NLM_F_DUMP_INTR may
// miss entries (here the subnet another run just took); it is done again
// until one is whole.
func TestDumpInterruptedIsRedone(t *testing.T) {
	var dumps int
	conn := fakeAddrDumps(t, 2, &dumps)
	defer conn.Close()
	got := dumpedAddrs(t, conn)
	if want := []string{"10.1.0.1", "10.2.0.1"}; !slices.Equal(got, want) || dumps != 3 {
		t.Errorf("addresses %v after %d dumps, want %v after 3 (two interrupted)", got, dumps, want)
	}
}

// TestDumpInterruptedBounded: a table that changes through every dump does
// not hold a run up forever: after dumpTries the last dump is used.
func TestDumpInterruptedBounded(t *testing.T) {
	var dumps int
	conn := fakeAddrDumps(t, 1<<30, &dumps)
	defer conn.Close()
	got := dumpedAddrs(t, conn)
	if want := []string{"10.1.0.1"}; !slices.Equal(got, want) || dumps != dumpTries {
		t.Errorf("addresses %v after %d dumps, want %v after %d", got, dumps, want, dumpTries)
	}
}
