package rawcap

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestLoopbackOnce: on lo every packet comes to a packet socket twice, as
// sent and as received; DropOutgoing keeps one copy of each, and the
// kernel's counters count that one only.
func TestLoopbackOnce(t *testing.T) {
	ns, f, lo := loNamespace(t)
	defer f.Close()
	ns.Run(t, "ip", "link", "set", "lo", "up")
	const n = 50
	for _, drop := range []bool{false, true} {
		r, err := Open(lo, &Config{NetNS: int(f.Fd()), RingSize: 4 << 20, BlockTimeout: 10 * time.Millisecond, DropOutgoing: drop})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		out := collect(t, r, ctx)
		err = ns.Do(func() error {
			l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				return err
			}
			defer l.Close()
			c, err := net.DialUDP("udp4", nil, l.LocalAddr().(*net.UDPAddr))
			if err != nil {
				return err
			}
			defer c.Close()
			for i := 0; i < n; i++ {
				if _, err := c.Write([]byte{byte(i)}); err != nil {
					return err
				}
			}
			return nil
		})
		time.Sleep(30 * time.Millisecond)
		cancel()
		got := <-out
		if err != nil {
			t.Fatal(err)
		}
		udp, outgoing := 0, 0
		for _, p := range got {
			if len(p.Data) > 23 && p.Data[23] == 17 {
				udp++
			}
			if p.Type == PacketOutgoing {
				outgoing++
			}
			if p.IfIndex != lo {
				t.Errorf("packet on interface %d, want lo (%d)", p.IfIndex, lo)
			}
		}
		st, serr := r.Stats()
		r.Close()
		want, wantOut := 2*n, len(got)/2
		if drop {
			want, wantOut = n, 0
		}
		if udp != want || outgoing != wantOut {
			t.Errorf("DropOutgoing %v: %d UDP packets (%d outgoing) of %d, want %d (%d outgoing)", drop, udp, outgoing, len(got), want, wantOut)
		}
		if serr != nil || st.Packets != uint64(len(got)) {
			t.Errorf("DropOutgoing %v: Stats = %+v, %v; want %d packets", drop, st, serr, len(got))
		}
	}
}
