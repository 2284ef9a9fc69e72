package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// --- table 5: the connection summary's cost on capture ------------------

// manyFlowsConf is trafgenConf's 64-byte frame with a random source port
// and a random last byte of the source address in every frame: millions of
// distinct conversations, far beyond the summary's table.
func manyFlowsConf(work string) (string, error) {
	const size = 64
	var b strings.Builder
	b.WriteString("{ 0x02,0x00,0x5e,0x00,0x00,0x99, 0x02,0x00,0x5e,0x00,0x00,0x01, c16(0x0800), ")
	ipLen := size - 14
	fmt.Fprintf(&b, "0x45,0x00,c16(%d),0,0,0x40,0,64,17,csumip(14,33), 10,99,0,drnd(), 10,99,0,2, ", ipLen)
	fmt.Fprintf(&b, "drnd(2),c16(9),c16(%d),c16(0), fill(0x41,%d) }\n", ipLen-20, ipLen-28)
	p := filepath.Join(work, "frame64-many.cfg")
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}

// sumSample is one run, with the summary's own counters when it was on.
type sumSample struct {
	sample
	skipped, untracked, tracked uint64
}

func summaryTable(work string) error {
	gen, capns, err := floodPair("sum")
	if err != nil {
		return err
	}
	one64, err := trafgenConf(work, 64)
	if err != nil {
		return err
	}
	many64, err := manyFlowsConf(work)
	if err != nil {
		return err
	}
	one1514, err := trafgenConf(work, 1514)
	if err != nil {
		return err
	}
	cases := []struct{ name, conf string }{
		{"64-byte, one flow", one64},
		{"64-byte, many flows", many64},
		{"1514-byte, one flow", one1514},
	}
	js := filepath.Join(work, "summary.json")
	// -q: the table on stderr would be one line per conversation here;
	// the tcpdump-style counters are printed regardless.
	off := tool{"nsntrace", func(dev, out string) []string {
		return []string{*flagBin, "-q", "--interface", dev, "-o", out}
	}}
	on := tool{"nsntrace --summary", func(dev, out string) []string {
		return []string{*flagBin, "-q", "--interface", dev, "-o", out, "--summary", js}
	}}

	fmt.Printf("\nTable 5. The connection summary's cost: nsntrace --interface -o tmpfs-file at trafgen's maximum rate, without and with --summary, %d interleaved runs of %.1f s each; medians [min..max]\n",
		*flagRuns, *flagSeconds)
	fmt.Println("  rate = captured per second, the capture rate; where captured/sent is 1 the capture kept up and the rate is trafgen's, noise included,")
	fmt.Println("  so cap/sent on/off (the ratio of the medians of captured/sent) compares the two on the same offered load")
	fmt.Println("  capacity = 1e9 / CPU ns per packet: the rate the capture's CPU could sustain; on/off = ratio of medians, summary on to off")
	fmt.Println("  CPU ns/pkt is the nsntrace process's user+system time per captured packet, building and writing the summary at the end included")
	for _, c := range cases {
		res := map[string][]sumSample{}
		for r := 0; r < *flagRuns; r++ {
			order := []tool{off, on}
			if r%2 == 1 {
				order = []tool{on, off} // neither always runs on a warmer machine
			}
			for _, t := range order {
				os.Remove(js)
				s, err := engineRun(gen, capns, t, c.conf, filepath.Join(work, "sum.pcapng"), "", nil)
				if err != nil {
					return err
				}
				ss := sumSample{sample: s}
				if t.name == on.name {
					if ss.skipped, ss.untracked, ss.tracked, err = readSummary(js); err != nil {
						return err
					}
				}
				res[t.name] = append(res[t.name], ss)
			}
		}
		printSummary(c.name, off.name, on.name, res)
	}
	os.Remove(js)
	return nil
}

// readSummary takes the summary's own counters from its JSON.
func readSummary(path string) (skipped, untracked, tracked uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("summary JSON: %w", err)
	}
	var r struct {
		Skipped     uint64            `json:"name_packets_skipped"`
		Untracked   uint64            `json:"untracked_conversations"`
		Connections []json.RawMessage `json:"connections"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, 0, 0, fmt.Errorf("summary JSON %s: %w", path, err)
	}
	return r.Skipped, r.Untracked, uint64(len(r.Connections)), nil
}

func printSummary(title, off, on string, res map[string][]sumSample) {
	fmt.Printf("\n  %s\n", title)
	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "summary\tsent\tcaptured\tcaptured/sent\trate Mpkt/s\tCPU ns/pkt\trate on/off\tcap/sent on/off\tcapacity on/off\tCPU on/off\tname pkts skipped\tconversations\tuntracked conv.\t")
	plain := func(ss []sumSample) []sample {
		v := make([]sample, len(ss))
		for i, s := range ss {
			v[i] = s.sample
		}
		return v
	}
	rate := func(s sample) float64 { return float64(s.captured) / *flagSeconds / 1e6 }
	base, baseCPU := median(vals(plain(res[off]), rate)), median(vals(plain(res[off]), sample.nsPerPkt))
	for _, name := range []string{off, on} {
		ss := res[name]
		ps := plain(ss)
		label, ratio, frac, capa, cpu, sk, conv, un := "off", "", "", "", "", "-", "-", "-"
		if name == on {
			label = "on"
			c := median(vals(ps, sample.nsPerPkt)) / baseCPU
			ratio = fmt.Sprintf("%.3f", median(vals(ps, rate))/base)
			frac = fmt.Sprintf("%.3f", median(vals(ps, sample.ratio))/median(vals(plain(res[off]), sample.ratio)))
			capa = fmt.Sprintf("%.3f", 1/c)
			cpu = fmt.Sprintf("%.3f", c)
			col := func(f func(sumSample) uint64) string {
				v := make([]float64, len(ss))
				for i, s := range ss {
					v[i] = float64(f(s))
				}
				return statf(v, 1, "%.0f")
			}
			sk = col(func(s sumSample) uint64 { return s.skipped })
			conv = col(func(s sumSample) uint64 { return s.tracked })
			un = col(func(s sumSample) uint64 { return s.untracked })
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", label,
			stat(ps, func(s sample) float64 { return float64(s.sent) }, "%.0f"),
			stat(ps, func(s sample) float64 { return float64(s.captured) }, "%.0f"),
			stat(ps, sample.ratio, "%.3f"),
			stat(ps, rate, "%.3f"),
			stat(ps, sample.nsPerPkt, "%.1f"),
			ratio, frac, capa, cpu, sk, conv, un)
	}
	tw.Flush()
}
