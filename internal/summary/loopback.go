package summary

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// DefaultMaxLoopback bounds the loopback conversation table: what a
// program says to itself is rarely many conversations, and the JSON
// writes them through encoding/json.
const DefaultMaxLoopback = 4096

// Loopback is the conversation table of the program's own loopback
// interface, kept apart from Flows: both ends of every conversation on lo
// are the program (or what it started), so none of them is a connection
// out of it, and neither side of a packet is "the program's". Each
// conversation is between a client and a server instead: for TCP the side
// that sent the SYN is the client; otherwise the side with the higher
// port (ephemeral ports are high) is guessed to be. Like Flows it does
// not allocate on the capture path and is not safe for concurrent use.
type Loopback struct {
	flows *Flows
}

// NewLoopback returns an empty table with room for cfg.MaxConversations
// (default DefaultMaxLoopback).
func NewLoopback(cfg *Config) *Loopback {
	c := Config{MaxConversations: DefaultMaxLoopback}
	if cfg != nil && cfg.MaxConversations > 0 {
		c.MaxConversations = cfg.MaxConversations
	}
	return &Loopback{flows: NewFlows(&c)}
}

// Account counts one Ethernet frame seen on lo: data are the captured
// bytes, length the original frame length, ts the capture time in Unix
// ns. It does not allocate.
func (l *Loopback) Account(data []byte, length int, ts int64) {
	// Both directions of a conversation must find one entry: the table
	// keys a conversation by (local, remote), so the side with the
	// higher (port, address) is made "local" whichever way the packet
	// goes. Deciding that takes a parse before the table's own; lo
	// traffic is not the capture's bulk.
	var p parsed
	out := true
	if parseFrame(data, true, &p) {
		k := &p.key
		lp, rp := k.localPort(), k.remotePort()
		out = lp > rp || lp == rp && (k.l1 > k.r1 || k.l1 == k.r1 && k.l0 >= k.r0)
	}
	l.flows.account(data, length, ts, out)
}

// LoopbackConnection is one conversation on the program's loopback
// interface.
type LoopbackConnection struct {
	Proto           string    `json:"proto"`
	ServerAddr      string    `json:"server_addr"`
	ServerPort      uint16    `json:"server_port"` // 0 for icmp/other
	ClientAddr      string    `json:"client_addr"`
	ClientPort      uint16    `json:"client_port"`
	PacketsToServer uint64    `json:"packets_to_server"`
	PacketsToClient uint64    `json:"packets_to_client"`
	BytesToServer   uint64    `json:"bytes_to_server"`
	BytesToClient   uint64    `json:"bytes_to_client"`
	FirstSeen       time.Time `json:"first_seen"`
	LastSeen        time.Time `json:"last_seen"`
	State           string    `json:"state"`
}

// AddLoopback puts the loopback conversations of l into the report (none
// added leaves the JSON's "loopback" null: lo was not captured).
func (r *Report) AddLoopback(l *Loopback) {
	f := l.flows
	r.Loopback = make([]LoopbackConnection, 0, len(f.ents))
	r.LoopbackUntracked = f.Untracked()
	for i := range f.ents {
		e := &f.ents[i]
		client, server := e.key.localAddrPort(), e.key.remoteAddrPort()
		toServer, toClient := e.pktsOut, e.pktsIn
		bToServer, bToClient := e.bytesOut, e.bytesIn
		if e.flags&fOutbound == 0 {
			client, server = server, client
			toServer, toClient, bToServer, bToClient = toClient, toServer, bToClient, bToServer
		}
		r.Loopback = append(r.Loopback, LoopbackConnection{
			Proto:      e.key.proto().String(),
			ServerAddr: server.Addr().String(), ServerPort: server.Port(),
			ClientAddr: client.Addr().String(), ClientPort: client.Port(),
			PacketsToServer: toServer, PacketsToClient: toClient,
			BytesToServer: bToServer, BytesToClient: bToClient,
			FirstSeen: nsTime(e.first), LastSeen: nsTime(e.last),
			State: e.state(),
		})
	}
	sort.SliceStable(r.Loopback, func(i, j int) bool { return r.Loopback[i].FirstSeen.Before(r.Loopback[j].FirstSeen) })
}

// writeLoopback writes the loopback section of the text table: one row
// for each protocol, server address and port, at most maxTextRows.
func (r *Report) writeLoopback(b *strings.Builder, hint string) {
	if len(r.Loopback) == 0 && r.LoopbackUntracked == 0 {
		return
	}
	type group struct {
		proto, server string
		port          uint16
		conns         int
		to, from      uint64
		states        map[string]int
	}
	var groups []*group
	idx := map[string]*group{}
	for _, c := range r.Loopback {
		k := fmt.Sprintf("%s|%s|%d", c.Proto, c.ServerAddr, c.ServerPort)
		g := idx[k]
		if g == nil {
			g = &group{proto: c.Proto, server: c.ServerAddr, port: c.ServerPort, states: map[string]int{}}
			idx[k] = g
			groups = append(groups, g)
		}
		g.conns++
		g.to += c.BytesToServer
		g.from += c.BytesToClient
		g.states[c.State]++
	}
	b.WriteString("Loopback conversations (the program with itself, on lo):\n")
	for i, g := range groups {
		if i == maxTextRows {
			fmt.Fprintf(b, "  ... and %d more rows%s\n", len(groups)-maxTextRows, hint)
			break
		}
		port, noun, note := rowCells(g.proto, g.port, g.conns, g.states)
		fmt.Fprintf(b, "  %-6s %5s  %-40s %3d %-5s %9s to it %9s back%s\n", g.proto, port, g.server, g.conns, noun, FormatBytes(g.to), FormatBytes(g.from), note)
	}
	if r.LoopbackUntracked > 0 {
		fmt.Fprintf(b, "  (about %d more loopback conversations were not tracked: table full)\n", r.LoopbackUntracked)
	}
}
