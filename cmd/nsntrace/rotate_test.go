package main

import (
	"testing"
	"time"
)

func TestRotationNames(t *testing.T) {
	tests := []struct {
		r     rotation
		names []string // of files 0, 1, 2, ...
	}{
		// tcpdump: FILE, FILE1, FILE2... without -W.
		{rotation{size: 1}, []string{"t.pcap", "t.pcap1", "t.pcap2", "t.pcap3"}},
		{rotation{every: time.Second}, []string{"t.pcap", "t.pcap1", "t.pcap2"}},
		// With -W N: 0 to N-1, padded to the width of N-1, going round.
		{rotation{size: 1, files: 3}, []string{"t.pcap0", "t.pcap1", "t.pcap2", "t.pcap0", "t.pcap1"}},
		{rotation{size: 1, files: 10}, []string{"t.pcap0", "t.pcap1"}},
		{rotation{size: 1, files: 11}, []string{"t.pcap00", "t.pcap01"}},
		{rotation{size: 1, files: 100}, []string{"t.pcap00", "t.pcap01"}},
		{rotation{size: 1, files: 101}, []string{"t.pcap000"}},
		{rotation{size: 1, files: 1}, []string{"t.pcap", "t.pcap"}},
	}
	for _, tc := range tests {
		for n, want := range tc.names {
			if got := tc.r.name("t.pcap", n); got != want {
				t.Errorf("%+v: file %d is %q, want %q", tc.r, n, got, want)
			}
		}
	}
	if got := (rotation{size: 1, files: 10}).name("t", 23); got != "t3" {
		t.Errorf("file 23 of a ring of 10 is %q, want t3", got)
	}
}

func TestRotationLastFile(t *testing.T) {
	for _, tc := range []struct {
		r    rotation
		want int
	}{
		{rotation{every: time.Second, files: 4}, 4}, // tcpdump: -G with -W stops
		{rotation{size: 1, files: 4}, 0},            // -C with -W: a ring
		{rotation{size: 1, every: time.Second, files: 4}, 0},
		{rotation{every: time.Second}, 0},
	} {
		if got := tc.r.lastFile(); got != tc.want {
			t.Errorf("%+v: last file %d, want %d", tc.r, got, tc.want)
		}
	}
}

func TestParseFileSize(t *testing.T) {
	good := map[string]int64{
		"1": 1_000_000, "10": 10_000_000, "20k": 20 << 10, "20K": 20 << 10,
		"3M": 3 << 20, "3m": 3 << 20, "2G": 2 << 30, "007": 7_000_000,
	}
	for s, want := range good {
		if got, err := parseFileSize(s); err != nil || got != want {
			t.Errorf("parseFileSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "0k", "k", "-1", "1.5", "1x", "10kB", " 1", "99999999999999999999", "9999999999G"} {
		if got, err := parseFileSize(s); err == nil {
			t.Errorf("parseFileSize(%q) = %d, want an error", s, got)
		}
	}
}
