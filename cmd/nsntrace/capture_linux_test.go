//go:build linux

package main

import (
	"testing"

	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
)

func TestDirection(t *testing.T) {
	unicast := []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2}
	multicast := []byte{0x01, 0x00, 0x5e, 0, 0, 1, 0x02, 0, 0, 0, 0, 2}
	broadcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 2}
	tests := []struct {
		name        string
		typ         rawcap.PacketType
		data        []byte
		programSide bool
		dir         pcapng.Direction
		rec         pcapng.Reception
	}{
		// On the host end of the veth: what it receives, the program sent.
		{"program sends", rawcap.PacketHost, unicast, true, pcapng.DirectionOutbound, pcapng.ReceptionUnknown},
		{"program broadcasts", rawcap.PacketBroadcast, broadcast, true, pcapng.DirectionOutbound, pcapng.ReceptionUnknown},
		{"program receives unicast", rawcap.PacketOutgoing, unicast, true, pcapng.DirectionInbound, pcapng.ReceptionUnicast},
		{"program receives multicast", rawcap.PacketOutgoing, multicast, true, pcapng.DirectionInbound, pcapng.ReceptionMulticast},
		{"program receives broadcast", rawcap.PacketOutgoing, broadcast, true, pcapng.DirectionInbound, pcapng.ReceptionBroadcast},
		{"runt frame", rawcap.PacketOutgoing, []byte{1, 2}, true, pcapng.DirectionInbound, pcapng.ReceptionUnknown},
		// On an interface (--interface): the kernel's view.
		{"interface sends", rawcap.PacketOutgoing, unicast, false, pcapng.DirectionOutbound, pcapng.ReceptionUnknown},
		{"interface receives", rawcap.PacketHost, unicast, false, pcapng.DirectionInbound, pcapng.ReceptionUnicast},
		{"interface receives broadcast", rawcap.PacketBroadcast, broadcast, false, pcapng.DirectionInbound, pcapng.ReceptionBroadcast},
		{"interface receives multicast", rawcap.PacketMulticast, multicast, false, pcapng.DirectionInbound, pcapng.ReceptionMulticast},
		{"promiscuous", rawcap.PacketOtherHost, unicast, false, pcapng.DirectionInbound, pcapng.ReceptionPromiscuous},
	}
	for _, tc := range tests {
		dir, rec := direction(tc.typ, tc.data, tc.programSide)
		if dir != tc.dir || rec != tc.rec {
			t.Errorf("%s: direction %v, reception %v; want %v, %v", tc.name, dir, rec, tc.dir, tc.rec)
		}
	}
}
