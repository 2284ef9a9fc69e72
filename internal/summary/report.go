package summary

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Meta is what the caller knows about the run.
type Meta struct {
	Command    []string
	ExitStatus int
	Started    time.Time
	Ended      time.Time
	Packets    uint64 // captured
	Dropped    uint64 // dropped by the kernel
	// NamePacketsSkipped counts packets that might have carried a name
	// but were not decoded: the decoder beside the capture had no room.
	NamePacketsSkipped uint64
	// SnapLen is the capture's snap length, named when it cut headers.
	SnapLen int
	// Processes says that the processes behind the connections were
	// looked for (Flows.SetProcess): the report then counts the TCP and
	// UDP connections whose process is unknown.
	Processes bool
}

// Report is the summary of one trace; its JSON form is the documented
// schema (see the package doc).
type Report struct {
	Command    []string  `json:"command"`
	ExitStatus int       `json:"exit_status"`
	Started    time.Time `json:"started"`
	Ended      time.Time `json:"ended"`
	Packets    uint64    `json:"packets"`
	Dropped    uint64    `json:"dropped"`
	Untracked  uint64    `json:"untracked_conversations"`
	// UntrackedPackets and NamePacketsSkipped were added after the first
	// version of the schema.
	UntrackedPackets   uint64 `json:"untracked_packets"`
	NamePacketsSkipped uint64 `json:"name_packets_skipped"`
	// CutPackets counts packets the snap length cut before their headers
	// ended: they are in no connection, so the summary is incomplete.
	CutPackets  uint64       `json:"cut_packets"`
	Connections []Connection `json:"connections"`
	DNSFailures []Failure    `json:"dns_failures"`
	// Loopback are the conversations on the program's own lo, none of
	// them in Connections; null when lo was not captured (AddLoopback).
	Loopback          []LoopbackConnection `json:"loopback"`
	LoopbackUntracked uint64               `json:"loopback_untracked_conversations"`
	// Unattributed counts the TCP and UDP connections whose process is
	// unknown; absent when processes were not looked for (Meta.Processes).
	Unattributed *uint64 `json:"unattributed_connections,omitempty"`
	// Violations are what broke the egress policy, in order of first
	// occurrence; null when the run had none (no --allow).
	Violations []Violation `json:"violations"`

	snapLen int
}

// Violation is one destination outside the egress policy: connections
// the program started to it (Kind "connection"), or lookups of a name no
// rule allows (Kind "lookup", Port 53, Proto the query's transport).
type Violation struct {
	Kind string `json:"kind"`
	// Name is the name looked up, or the name the program looked up to
	// get Addr, if any.
	Name  string `json:"name"`
	Addr  string `json:"remote_addr"`
	Port  uint16 `json:"remote_port"`
	Proto string `json:"proto"`
	// Count is how many connections or lookups.
	Count uint64 `json:"count"`
	// Blocked says that they were refused (--policy enforce).
	Blocked bool `json:"blocked"`
}

// Connection is one conversation.
type Connection struct {
	Proto      string    `json:"proto"`
	Direction  string    `json:"direction"`
	RemoteAddr string    `json:"remote_addr"`
	RemotePort uint16    `json:"remote_port"`
	LocalPort  uint16    `json:"local_port"`
	Names      []string  `json:"names"`
	PacketsOut uint64    `json:"packets_out"`
	PacketsIn  uint64    `json:"packets_in"`
	BytesOut   uint64    `json:"bytes_out"`
	BytesIn    uint64    `json:"bytes_in"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	State      string    `json:"state"`
	// Pid, Comm and Cmdline name the process that owned the connection's
	// socket (Process); absent from the JSON when unknown.
	Pid     int    `json:"pid,omitempty"`
	Comm    string `json:"comm,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
}

func (e *entry) state() string {
	switch e.key.proto() {
	case ProtoTCP:
		switch f := e.flags; {
		case f&fSynOut != 0 && f&fSynAckIn != 0, f&fSynIn != 0 && f&fSynAckOut != 0:
			return "established"
		case f&fSynOut != 0 && f&fRstIn != 0, f&fSynIn != 0 && f&fRstOut != 0:
			return "refused"
		case f&(fSynOut|fSynIn) != 0:
			return "no answer"
		}
		return "partial"
	default:
		if out := e.flags&fOutbound != 0; out && e.pktsIn == 0 || !out && e.pktsOut == 0 {
			return "no answer"
		}
		return "answered"
	}
}

// NewReport builds the summary from a conversation table and the names
// decoded beside it; neither may change while it runs. Queries still
// unanswered count as failed.
func NewReport(m Meta, f *Flows, n *Names) *Report {
	r := &Report{
		Command: m.Command, ExitStatus: m.ExitStatus, Started: m.Started.UTC(), Ended: m.Ended.UTC(),
		Packets: m.Packets, Dropped: m.Dropped,
		Untracked: f.Untracked(), UntrackedPackets: f.UntrackedPackets(), NamePacketsSkipped: m.NamePacketsSkipped,
		CutPackets: f.CutHeaders(), snapLen: m.SnapLen,
		Connections: make([]Connection, 0, len(f.ents)), DNSFailures: append([]Failure{}, n.failures...),
	}
	if r.Command == nil {
		r.Command = []string{}
	}
	for _, id := range n.qorder {
		if q := n.queries[id]; q != nil && !q.done {
			r.DNSFailures = append(r.DNSFailures, Failure{Name: q.name, Type: q.qtype, RCode: "no answer"})
		}
	}
	var unattributed uint64
	for i := range f.ents {
		e := &f.ents[i]
		remote := e.key.remoteAddrPort()
		conn := Connection{
			Proto: e.key.proto().String(), Direction: "inbound",
			RemoteAddr: remote.Addr().String(), RemotePort: remote.Port(), LocalPort: e.key.localPort(),
			Names:      append([]string{}, n.names[remote.Addr()]...),
			PacketsOut: e.pktsOut, PacketsIn: e.pktsIn, BytesOut: e.bytesOut, BytesIn: e.bytesIn,
			FirstSeen: nsTime(e.first), LastSeen: nsTime(e.last), State: e.state(),
		}
		if e.flags&fOutbound != 0 {
			conn.Direction = "outbound"
		}
		if e.proc > 0 {
			p := &f.procs[e.proc-1]
			conn.Pid, conn.Comm, conn.Cmdline = p.Pid, p.Comm, p.Cmdline
		} else if p := e.key.proto(); m.Processes && (p == ProtoTCP || p == ProtoUDP) {
			unattributed++
		}
		sort.Strings(conn.Names)
		r.Connections = append(r.Connections, conn)
	}
	if m.Processes {
		r.Unattributed = &unattributed
	}
	sort.SliceStable(r.Connections, func(i, j int) bool {
		a, b := r.Connections[i], r.Connections[j]
		if a.Direction != b.Direction {
			return a.Direction == "outbound"
		}
		if !a.FirstSeen.Equal(b.FirstSeen) {
			return a.FirstSeen.Before(b.FirstSeen)
		}
		return a.LocalPort < b.LocalPort
	})
	return r
}

// WriteJSON writes the report as indented JSON with one connection a line:
// a full table is 65536 connections, which encoding/json's reflection and
// re-indentation took a third of a second of CPU to write, on the CPU the
// capture has just used.
func (r *Report) WriteJSON(w io.Writer) error {
	head := *r
	head.Connections = []Connection{}
	doc, err := json.MarshalIndent(&head, "", "  ")
	if err != nil {
		return err
	}
	// Unique: inside a JSON string the quotes would be escaped.
	const slot = "\n  \"connections\": []"
	i := bytes.Index(doc, []byte(slot))
	if i < 0 {
		return errors.New("summary JSON: no connections slot") // a field renamed without this
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(doc[:i+len(slot)-1])
	var line []byte
	for j := range r.Connections {
		line = append(line[:0], "\n    "...)
		line = r.Connections[j].appendJSON(line)
		if j < len(r.Connections)-1 {
			line = append(line, ',')
		}
		bw.Write(line) // errors are sticky: see Flush
	}
	if len(r.Connections) > 0 {
		bw.WriteString("\n  ")
	}
	bw.Write(doc[i+len(slot)-1:])
	bw.WriteByte('\n')
	return bw.Flush()
}

// appendJSON encodes c as encoding/json would, compactly, without
// reflection. Only names can hold characters JSON must escape; they go
// through encoding/json.
func (c *Connection) appendJSON(b []byte) []byte {
	str := func(b []byte, key, v string) []byte {
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, `":"`...)
		b = append(b, v...)
		return append(b, `",`...)
	}
	num := func(b []byte, key string, v uint64) []byte {
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, `":`...)
		b = strconv.AppendUint(b, v, 10)
		return append(b, ',')
	}
	tm := func(b []byte, key string, t time.Time) []byte {
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, `":"`...)
		b = t.AppendFormat(b, time.RFC3339Nano)
		return append(b, `",`...)
	}
	b = append(b, '{')
	b = str(b, "proto", c.Proto)
	b = str(b, "direction", c.Direction)
	b = str(b, "remote_addr", c.RemoteAddr)
	b = num(b, "remote_port", uint64(c.RemotePort))
	b = num(b, "local_port", uint64(c.LocalPort))
	b = append(b, `"names":`...)
	if len(c.Names) == 0 {
		b = append(b, "[]"...)
	} else {
		n, _ := json.Marshal(c.Names) // strings cannot fail to encode
		b = append(b, n...)
	}
	b = append(b, ',')
	b = num(b, "packets_out", c.PacketsOut)
	b = num(b, "packets_in", c.PacketsIn)
	b = num(b, "bytes_out", c.BytesOut)
	b = num(b, "bytes_in", c.BytesIn)
	b = tm(b, "first_seen", c.FirstSeen)
	b = tm(b, "last_seen", c.LastSeen)
	b = str(b, "state", c.State)
	if c.Pid != 0 {
		b = num(b, "pid", uint64(c.Pid))
	}
	for _, kv := range [2][2]string{{"comm", c.Comm}, {"cmdline", c.Cmdline}} {
		if kv[1] != "" {
			// Anything a program calls itself: through encoding/json.
			v, _ := json.Marshal(kv[1]) // strings cannot fail to encode
			b = append(b, '"')
			b = append(b, kv[0]...)
			b = append(b, `":`...)
			b = append(b, v...)
			b = append(b, ',')
		}
	}
	b[len(b)-1] = '}'
	return b
}

// maxTextRows bounds the rows of each direction in the text table: it is
// read at a glance, and a busy server's thousands of clients are in the
// JSON. The rows kept are those that moved the most bytes.
const maxTextRows = 40

// WriteText writes the compact table for people: outbound first, grouped
// by protocol, remote name or address and port; then inbound, grouped by
// protocol, the program's own port (the service it offered) and the remote
// address; then failed DNS lookups. Each direction shows at most
// maxTextRows rows, with one line for the rest, which ends with fullList
// in parentheses when the caller gave one: where the reader finds every
// row (the summary itself prints no command-line text).
func (r *Report) WriteText(w io.Writer, fullList string) error {
	hint := ""
	if fullList != "" {
		hint = " (" + fullList + ")"
	}
	type group struct {
		proto, dir, who string
		port            uint16
		conns           int
		out, in         uint64
		states          map[string]int
		order           int
		procs           []string // distinct, in order of first connection
	}
	var groups []*group
	idx := map[string]*group{}
	for _, c := range r.Connections {
		who := c.RemoteAddr
		if len(c.Names) > 0 {
			who = fmt.Sprintf("%s (%s)", strings.Join(c.Names, ", "), c.RemoteAddr)
		}
		port := c.RemotePort
		if c.Direction == "inbound" {
			port = c.LocalPort // a client's ports are ephemeral; the service is ours
		}
		k := fmt.Sprintf("%s|%s|%s|%d", c.Direction, c.Proto, who, port)
		g := idx[k]
		if g == nil {
			g = &group{proto: c.Proto, dir: c.Direction, who: who, port: port, states: map[string]int{}, order: len(groups)}
			idx[k] = g
			groups = append(groups, g)
		}
		g.conns++
		g.out += c.BytesOut
		g.in += c.BytesIn
		g.states[c.State]++
		if c.Comm != "" || c.Pid != 0 {
			if p := fmt.Sprintf("%s[%d]", c.Comm, c.Pid); !slices.Contains(g.procs, p) {
				g.procs = append(g.procs, p)
			}
		}
	}
	var b strings.Builder
	for _, dir := range []string{"outbound", "inbound"} {
		var rows []*group
		for _, g := range groups {
			if g.dir == dir {
				rows = append(rows, g)
			}
		}
		if len(rows) == 0 {
			continue
		}
		var rest []*group
		if len(rows) > maxTextRows {
			sort.SliceStable(rows, func(i, j int) bool { return rows[i].out+rows[i].in > rows[j].out+rows[j].in })
			rows, rest = rows[:maxTextRows], rows[maxTextRows:]
			sort.Slice(rows, func(i, j int) bool { return rows[i].order < rows[j].order })
		}
		fmt.Fprintf(&b, "%s connections:\n", strings.ToUpper(dir[:1])+dir[1:])
		for _, g := range rows {
			port, noun, note := rowCells(g.proto, g.port, g.conns, g.states)
			fmt.Fprintf(&b, "  %-6s %5s  %-40s %3d %-5s %9s out %9s in%s%s\n", g.proto, port, g.who, g.conns, noun, FormatBytes(g.out), FormatBytes(g.in), note, procCell(g.procs))
		}
		if len(rest) > 0 {
			conns, out, in := 0, uint64(0), uint64(0)
			for _, g := range rest {
				conns, out, in = conns+g.conns, out+g.out, in+g.in
			}
			fmt.Fprintf(&b, "  ... and %d more rows: %d conns, %s out, %s in%s\n",
				len(rest), conns, FormatBytes(out), FormatBytes(in), hint)
		}
	}
	r.writeLoopback(&b, hint)
	if len(r.DNSFailures) > 0 {
		b.WriteString("DNS lookups that failed:\n")
		for _, f := range r.DNSFailures[:min(len(r.DNSFailures), maxTextRows)] {
			fmt.Fprintf(&b, "  %-40s %-5s %s\n", f.Name, f.Type, f.RCode)
		}
		if n := len(r.DNSFailures) - maxTextRows; n > 0 {
			fmt.Fprintf(&b, "  ... and %d more%s\n", n, hint)
		}
	}
	if r.Unattributed != nil && *r.Unattributed > 0 {
		fmt.Fprintf(&b, "(%d of the TCP and UDP connections above with no known process: their sockets were gone before they were seen, were no process's, or came faster than nsntrace looks up)\n", *r.Unattributed)
	}
	r.writeViolations(&b)
	if r.Untracked > 0 {
		fmt.Fprintf(&b, "(about %d more conversations, %d packets, were not tracked: table full)\n", r.Untracked, r.UntrackedPackets)
	}
	if b.Len() == 0 {
		b.WriteString("No connections.\n")
	}
	if r.CutPackets > 0 {
		fmt.Fprintf(&b, "(incomplete: the snap length of %d bytes cut the headers of %d packets, which are in no connection above)\n", r.snapLen, r.CutPackets)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// maxRowProcs bounds the processes a text row names.
const maxRowProcs = 3

// procCell names the processes of a row's connections, as
// "  curl[12], wget[13]", the first maxRowProcs of them.
func procCell(procs []string) string {
	switch {
	case len(procs) == 0:
		return ""
	case len(procs) > maxRowProcs:
		return fmt.Sprintf("  %s and %d more", strings.Join(procs[:maxRowProcs], ", "), len(procs)-maxRowProcs)
	}
	return "  " + strings.Join(procs, ", ")
}

// FormatBytes writes a byte count for people, in SI units (kB, MB, GB)
// with one decimal.
func FormatBytes(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// rowCells are the cells a text row of conversations shares: the port
// ("-" for protocols without one), "conn" or "conns", and the note on how
// many were refused, unanswered or cut short.
func rowCells(proto string, port uint16, conns int, states map[string]int) (portCell, noun, note string) {
	noun = "conns"
	if conns == 1 {
		noun = "conn"
	}
	portCell = fmt.Sprint(port)
	if proto == "icmp" || proto == "icmpv6" || proto == "other" {
		portCell = "-"
	}
	var notes []string
	for _, s := range []string{"refused", "no answer", "partial"} {
		if n := states[s]; n > 0 {
			notes = append(notes, fmt.Sprintf("%d %s", n, s))
		}
	}
	if len(notes) > 0 {
		note = "  (" + strings.Join(notes, ", ") + ")"
	}
	return portCell, noun, note
}

// writeViolations lists the egress policy's violations, all of them: a
// CI job that fails on them must say why.
func (r *Report) writeViolations(b *strings.Builder) {
	if r.Violations == nil {
		return
	}
	if len(r.Violations) == 0 {
		b.WriteString("Egress policy: no violations.\n")
		return
	}
	b.WriteString("Egress policy violations:\n")
	for _, v := range r.Violations {
		who := v.Addr
		switch {
		case v.Kind == "lookup":
			who = "lookup of " + v.Name
		case v.Name != "":
			who = fmt.Sprintf("%s (%s)", v.Name, v.Addr)
		}
		port := "-"
		if v.Port != 0 {
			port = strconv.Itoa(int(v.Port))
		}
		what := "allowed through (audit)"
		if v.Blocked {
			what = "blocked"
		}
		fmt.Fprintf(b, "  %-6s %5s  %-40s %3dx %s\n", v.Proto, port, who, v.Count, what)
	}
}
