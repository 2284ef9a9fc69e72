//go:build linux

package main

import (
	"encoding/binary"
	"testing"

	"github.com/nsntrace/nsntrace/pcapng"
	"github.com/nsntrace/nsntrace/rawcap"
)

// udpFrame is an Ethernet/IPv4/UDP frame of size bytes (at least 42)
// from 10.0.0.1:sport to 10.0.0.2:dport; checksums are left zero.
func udpFrame(size int, sport, dport uint16) []byte {
	b := make([]byte, size)
	copy(b, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45})
	binary.BigEndian.PutUint16(b[16:], uint16(size-14))
	b[22], b[23] = 64, 17
	copy(b[26:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(b[34:], sport)
	binary.BigEndian.PutUint16(b[36:], dport)
	binary.BigEndian.PutUint16(b[38:], uint16(size-34))
	return b
}

// TestFeedAllocs: the summary's part of the capture path allocates
// nothing, for a known conversation, a new one and a name packet.
func TestFeedAllocs(t *testing.T) {
	s := newSummarizer()
	defer s.finish()
	data := udpFrame(64, 4000, 9)
	p := &rawcap.Packet{Data: data, Length: len(data), Type: rawcap.PacketHost}
	s.feed(p, pcapng.DirectionInbound)
	if a := testing.AllocsPerRun(1000, func() { s.feed(p, pcapng.DirectionInbound) }); a != 0 {
		t.Errorf("feed of a known conversation allocates %v times", a)
	}
	port := uint16(10000)
	if a := testing.AllocsPerRun(1000, func() {
		port++
		binary.BigEndian.PutUint16(data[34:], port)
		s.feed(p, pcapng.DirectionInbound)
	}); a != 0 {
		t.Errorf("feed of a new conversation allocates %v times", a)
	}
	dns := udpFrame(100, 53, 40000)
	q := &rawcap.Packet{Data: dns, Length: len(dns), Type: rawcap.PacketHost}
	if a := testing.AllocsPerRun(1000, func() { s.feed(q, pcapng.DirectionInbound) }); a != 0 {
		t.Errorf("feed of a DNS packet allocates %v times", a)
	}
}
