//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/sockdiag"
	"github.com/nsntrace/nsntrace/internal/summary"
	"github.com/nsntrace/nsntrace/rawcap"
	"github.com/nsntrace/nsntrace/rawcap/filter"
)

// The process behind a connection: for the packet that adds a
// conversation (an outbound SYN or first datagram, an inbound SYN), the
// kernel is asked for the socket that owns the conversation (sockdiag, in
// the program's network namespace: for an inbound SYN the listener), and
// its inode is looked up among the "socket:[N]" links of /proc/PID/fd of
// the program's processes. The process so found names the connection in
// the summary and in a comment on that packet. What is not found stays
// unknown: a socket closed before it was looked up, or one no process
// holds any more.
//
// The capture ring cannot be where this starts: it hands over its blocks
// up to 100 ms after their first packet (rawcap.DefaultBlockTimeout), and
// most connections of a command-line program are over by then. So a
// packet socket on the same veth (the watcher: only TCP SYNs without ACK
// and UDP, 128 bytes of each, each waking its reader at once) has a
// goroutine of its own that looks up each new conversation as it starts,
// while its socket still exists, and remembers the answer. The capture
// goroutine, once the packet comes out of the capture ring, takes that
// answer before it writes the packet; if the watcher has not got there
// yet (a busy capture fills its blocks fast), it looks the conversation
// up itself. The capture path pays nothing for packets that start
// nothing; what the watcher misses (its socket buffer full) loses only
// attributions.
//
// The program's processes are read from the /proc its init mounted for
// its PID namespace (through /proc/INIT/root/proc): that lists only them,
// numbered as the program numbers them, with no filtering of the host's
// processes by namespace. The inode-to-pid map is rebuilt by a scan on a
// miss (scan); a scan runs only when the time since the last one is at least
// scanGapFactor times what the last one took, so that a program opening
// thousands of connections (and holding thousands of descriptors) does not
// make nsntrace spend more than a fifth of its time in /proc. A fixed
// interval of a few milliseconds would have missed the common case: curl's
// TCP socket, opened a millisecond after its DNS socket made a scan.
//
// A socket found while the next scan is not yet due is looked up again
// when it is (retryLater), not left unknown: two processes connecting at
// once on a loaded machine, where a scan takes tens of milliseconds, had
// the second one's connection unnamed although it lasted far longer.
// maxPending bounds the conversations waiting so.
const (
	scanGapFactor = 4
	maxPending    = 256
)

// maxCmdline bounds the command line kept of each process.
const maxCmdline = 200

// maxKnown bounds the answers remembered, oldest forgotten first: a
// conversation's later datagrams find its answer there rather than cost a
// lookup each, for as long as it is among the last maxKnown.
const maxKnown = 4096

// watchFilter keeps the packets that may start a conversation: TCP SYNs
// without ACK (IPv4, and IPv6 without extension headers: those the
// capture goroutine looks up itself) and UDP. A SYN coming to the program
// is watched too, although its listener outlives the connection: the
// capture goroutine may get to it only after the program has exited.
const watchFilter = "udp or " + synFilter

// synFilter matches a TCP SYN without ACK, over IPv4 or IPv6.
const synFilter = "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn or (ip6 and ip6[6] == 6 and ip6[53] & 0x12 == 0x02)"

// watchSnapLen is enough of a frame for its headers.
const watchSnapLen = 128

// A busy UDP flow would make the watcher a second capture path, one
// wake-up, system call and lookup per datagram: traced iperf3 -u fell from
// ~800 to ~450 Mbit/s. So the watcher sheds UDP when most of what it sees
// belongs to conversations it knows: more than udpRepeatLimit such
// datagrams within udpWindow make it keep only the program's SYNs and DNS
// (watchShedFilter: the conversations most often over within a
// millisecond) for udpShed, doubled for each shed that follows the last
// within udpShed, up to maxUDPShed. UDP conversations that begin meanwhile
// are looked up by the capture goroutine as they come out of the ring, and
// are attributed if their socket lives that long.
//
// A service taking connections one after the other is the same case: a
// wake-up per SYN took a third of a core, and a traced nginx lost a third
// of its requests/s, while each lookup found the process it had found for
// the port a moment before (served). So more than inboundRepeatLimit
// inbound SYNs within udpWindow to ports whose process is known shed them
// too, by the same filter; the capture goroutine then names those
// connections from served, asking the kernel again once describeTTL has
// passed.
const (
	udpWindow          = 100 * time.Millisecond
	udpRepeatLimit     = 200
	inboundRepeatLimit = 100
	udpShed            = time.Second
	maxUDPShed         = 16 * time.Second
	watchShedFilter    = "udp port 53 or (inbound and (" + synFilter + "))"
)

// A lookup costs a netlink round trip and reads under /proc, tens of
// microseconds: a service taking thousands of new connections a second
// would have nsntrace spend a core on them, and the traced nginx of make
// bench's table 6 lost 40% of its requests/s without keep-alive. So
// lookups get a budget: lookupFree of them in each lookupWindow, and
// beyond those only while lookups took less than lookupBudget of it (a
// tenth of a core; measured as wall time, which a loaded machine
// inflates: hence the free ones, so that a program opening a few
// connections is always looked up). Beyond it, new connections stay
// unknown until the window ends, and the watcher, which would wake for
// each SYN, keeps only DNS (watchQuietFilter) for a shed as above.
const (
	lookupWindow     = 100 * time.Millisecond
	lookupFree       = 32
	lookupBudget     = 10 * time.Millisecond
	watchQuietFilter = "udp port 53"
)

type connKey struct {
	proto         summary.Proto
	local, remote netip.AddrPort
	// inbound says that the remote end started it.
	inbound bool
}

// answer is what a lookup found: a process, or (ok false) none. later
// says that the socket was found but not yet its process, the scan that
// may find it being due only later: the lookup is done again then.
type answer struct {
	p     summary.Process
	ok    bool
	later bool
}

// procs finds the processes behind new connections, for the watch
// goroutine and the capture goroutine; mu guards all but the watcher.
type procs struct {
	mu   sync.Mutex
	diag *sockdiag.Conn
	proc *os.Root // the program's /proc
	// owners maps socket inodes to pids, as the last scan saw them.
	owners   map[uint32]int
	scanned  time.Time // when the last scan ended
	scanCost time.Duration
	// descs are describe's answers of the last describeTTL, by pid;
	// served are lookup's of the last describeTTL for inbound TCP, by
	// the address and port connected to.
	descs  map[int]described
	served map[netip.AddrPort]described
	link   [64]byte
	// known are the answers, by conversation; order holds their keys,
	// next the oldest.
	known map[connKey]answer
	order []connKey
	next  int
	// err is the first failure of a lookup, reported once the run ended.
	err error
	// commentOf and comment are attribute's last packet comment and the
	// process it names (a service's connections mostly name one), for
	// the capture goroutine alone: not guarded by mu.
	commentOf summary.Process
	comment   string
	// pending are the conversations whose answer came later, to be
	// looked up again by retry; closed says that p was closed.
	pending []connKey
	retry   *time.Timer
	closed  bool

	watch  *rawcap.Watcher
	cancel context.CancelFunc
	done   chan struct{}

	// full and shed are the watcher's filters (watchFilter,
	// watchShedFilter). udpSeen counts the datagrams of known UDP
	// conversations, inSeen the inbound SYNs to ports served knows;
	// restore, while shed, puts full back when shed has passed, at
	// shedEnd; sheds counts them.
	full, shedProg []bpf.RawInstruction
	udpSeen        burst
	inSeen         burst
	restore        *time.Timer
	shed           time.Duration
	shedEnd        time.Time
	sheds          int
	// quietProg is the watcher's filter while lookups are over budget;
	// spent is the CPU lookups took in the window that began at
	// budgetStart; overBudget counts the lookups left out.
	quietProg   []bpf.RawInstruction
	budgetStart time.Time
	spent       time.Duration
	lookups     int
	overBudget  int
}

// openProcs prepares the lookups for the program whose init has host pid
// init and network namespace netns, and starts watching the veth with
// interface index ifindex. The caller closes it.
func openProcs(netns, init, ifindex int) (_ *procs, err error) {
	p := &procs{owners: map[uint32]int{}, known: map[connKey]answer{}, descs: map[int]described{}, served: map[netip.AddrPort]described{}}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.diag, err = sockdiag.Open(netns); err != nil {
		return nil, err
	}
	if p.proc, err = os.OpenRoot(fmt.Sprintf("/proc/%d/root/proc", init)); err != nil {
		return nil, fmt.Errorf("open the program's /proc: %w", err)
	}
	if err := p.compileFilters(); err != nil {
		return nil, err
	}
	if p.watch, err = rawcap.NewWatcher(&rawcap.Config{SnapLen: watchSnapLen, Filter: p.full}); err != nil {
		return nil, err
	}
	if err := p.watch.Bind(ifindex); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		// An error ends the watching, not the trace: the capture
		// goroutine looks conversations up itself.
		if err := p.watch.Run(ctx, p.watched); err != nil {
			p.mu.Lock()
			if p.err == nil {
				p.err = fmt.Errorf("watch the veth: %w", err)
			}
			p.mu.Unlock()
		}
	}()
	return p, nil
}

// compileFilters compiles the watcher's three filters: full, while UDP is
// shed, and while lookups are over budget.
func (p *procs) compileFilters() error {
	for _, f := range []struct {
		prog *[]bpf.RawInstruction
		expr string
	}{{&p.full, watchFilter}, {&p.shedProg, watchShedFilter}, {&p.quietProg, watchQuietFilter}} {
		var err error
		if *f.prog, err = filter.Compile(f.expr, watchSnapLen); err != nil {
			return fmt.Errorf("compile the watch filter %q: %w", f.expr, err) // a constant: a bug
		}
	}
	return nil
}

// Close stops the watching and closes what p holds; it may be called
// more than once.
func (p *procs) Close() error {
	p.mu.Lock()
	p.closed = true
	if p.restore != nil {
		p.restore.Stop()
		p.restore = nil
	}
	if p.retry != nil {
		p.retry.Stop()
		p.retry = nil
	}
	p.mu.Unlock()
	if p.cancel != nil {
		p.cancel()
		<-p.done
		p.cancel = nil
	}
	var err error
	if p.watch != nil {
		err = p.watch.Close()
		p.watch = nil
	}
	if p.diag != nil {
		if cerr := p.diag.Close(); err == nil {
			err = cerr
		}
	}
	if p.proc != nil {
		if cerr := p.proc.Close(); err == nil {
			err = cerr
		}
		p.proc = nil
	}
	return err
}

// watched looks up the conversation of a packet the watcher saw, unless
// it is known already.
func (p *procs) watched(pk *rawcap.Packet) error {
	// The watcher is on the host end: what it sends, the program receives.
	c, ok := summary.ConvOf(pk.Data, pk.Type != rawcap.PacketOutgoing)
	if !ok || c.Proto != summary.ProtoTCP && c.Proto != summary.ProtoUDP {
		return nil
	}
	k := connKey{c.Proto, c.Local, c.Remote, !c.Outbound}
	now := time.Unix(0, pk.Timestamp)
	p.mu.Lock()
	defer p.mu.Unlock()
	// A SYN is a new connection, maybe on the ends of an old one: looked
	// up again. A datagram of a known conversation is not (a busy UDP
	// flow would cost a lookup each).
	if _, ok := p.known[k]; ok && c.Proto == summary.ProtoUDP {
		p.repeated(&p.udpSeen, udpRepeatLimit, now)
		return nil
	}
	if _, ok := p.served[k.local]; ok && k.inbound && c.Proto == summary.ProtoTCP {
		p.repeated(&p.inSeen, inboundRepeatLimit, now)
	}
	p.remember(k, p.lookup(k))
	return nil
}

// burst counts events within udpWindow.
type burst struct {
	start time.Time
	n     int
}

// add counts an event at now and returns the count of its window.
func (b *burst) add(now time.Time) int {
	if now.Sub(b.start) > udpWindow {
		b.start, b.n = now, 0
	}
	b.n++
	return b.n
}

// repeated counts in b a packet the watcher need not have woken for, seen
// at now, and sheds what it may when more than limit come within
// udpWindow. The caller holds mu.
func (p *procs) repeated(b *burst, limit int, now time.Time) {
	if b.add(now) <= limit || p.restore != nil {
		return // calm, or shed already (the socket's queue drains)
	}
	p.shedTo(p.shedProg, now)
}

// shedTo gives the watcher filter prog until a shed from now has passed:
// udpShed, or twice the last one if it ended less than udpShed ago, up to
// maxUDPShed. A shed under way is made prog's, and keeps its end. The
// caller holds mu.
func (p *procs) shedTo(prog []bpf.RawInstruction, now time.Time) {
	if p.watch == nil {
		return
	}
	if err := p.watch.SetFilter(prog); err != nil {
		if p.err == nil {
			p.err = err
		}
		return
	}
	if p.restore != nil {
		return
	}
	if p.shed == 0 || now.Sub(p.shedEnd) > udpShed {
		p.shed = udpShed
	} else {
		p.shed = min(2*p.shed, maxUDPShed)
	}
	p.sheds++
	p.shedEnd = now.Add(p.shed)
	p.restore = time.AfterFunc(p.shed, p.unshed)
}

// withinBudget says whether a lookup may run now, and quiets the watcher
// when lookups have spent their budget. The caller holds mu.
func (p *procs) withinBudget(now time.Time) bool {
	if now.Sub(p.budgetStart) > lookupWindow {
		p.budgetStart, p.spent, p.lookups = now, 0, 0
	}
	p.lookups++
	if p.lookups <= lookupFree || p.spent < lookupBudget {
		return true
	}
	p.overBudget++
	if p.overBudget%64 == 1 { // not a system call for each connection left out
		p.shedTo(p.quietProg, now)
	}
	return false
}

// unshed puts UDP back into the watcher's filter once a shed has passed,
// unless p was closed meanwhile.
func (p *procs) unshed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.restore == nil || p.watch == nil {
		return
	}
	p.restore, p.udpSeen, p.inSeen = nil, burst{}, burst{}
	if err := p.watch.SetFilter(p.full); err != nil && p.err == nil {
		p.err = err
	}
}

// remember keeps a's answer for k, forgetting the oldest beyond maxKnown.
func (p *procs) remember(k connKey, a answer) {
	if _, ok := p.known[k]; ok {
		p.known[k] = a
		return
	}
	if len(p.order) < maxKnown {
		p.order = append(p.order, k)
	} else {
		delete(p.known, p.order[p.next])
		p.order[p.next] = k
		p.next = (p.next + 1) % maxKnown
	}
	p.known[k] = a
}

// attribute names the process behind c, a conversation f has just added,
// in f, and returns the comment for its first packet: "" if the process
// is unknown. The capture goroutine's.
func (p *procs) attribute(f *summary.Flows, c summary.NewConv) string {
	if c.Proto != summary.ProtoTCP && c.Proto != summary.ProtoUDP {
		return "" // no socket to look up
	}
	k := connKey{c.Proto, c.Local, c.Remote, !c.Outbound}
	p.mu.Lock()
	a, ok := p.known[k]
	if !ok || a.later {
		a = p.lookup(k)
		// Only the watcher reads answers again: to skip the datagrams
		// of a known UDP conversation, and to find one it asked to be
		// looked up later. A TCP connection it did not see costs no
		// entry (under load, a served port's connections).
		if ok || k.proto == summary.ProtoUDP {
			p.remember(k, a)
		}
	}
	p.mu.Unlock()
	if !a.ok {
		return ""
	}
	f.SetProcess(c, a.p)
	if a.p != p.commentOf || p.comment == "" { // only this goroutine uses them
		p.commentOf, p.comment = a.p, fmt.Sprintf("nsntrace: pid %d %s (%s)", a.p.Pid, a.p.Comm, a.p.Cmdline)
	}
	return p.comment
}

// lookup asks the kernel for k's socket and finds its process. The
// caller holds mu.
func (p *procs) lookup(k connKey) answer {
	start := time.Now()
	inbound := k.inbound && k.proto == summary.ProtoTCP
	if inbound {
		if l, ok := p.served[k.local]; ok && start.Sub(l.at) < describeTTL {
			return answer{p: l.p, ok: true}
		}
	}
	if !p.withinBudget(start) {
		return answer{}
	}
	defer func() { p.spent += time.Since(start) }()
	var inode uint32
	var ok bool
	var err error
	switch {
	case k.proto == summary.ProtoUDP:
		// Connected or not: the kernel's lookup scores both.
		inode, ok, err = p.diag.Lookup(sockdiag.ProtoUDP, k.local, k.remote)
	case k.inbound:
		// An inbound SYN reaches the listener; by the time it is looked
		// up, the connection may be over (TIME_WAIT has no inode).
		inode, ok, err = p.diag.Listener(k.local)
	default:
		inode, ok, err = p.diag.Lookup(sockdiag.ProtoTCP, k.local, k.remote)
	}
	if err != nil {
		if p.err == nil {
			p.err = err
		}
		return answer{}
	}
	if !ok {
		return answer{}
	}
	pid, ok := p.owners[inode]
	if !ok {
		if wait := scanGapFactor*p.scanCost - time.Since(p.scanned); wait > 0 {
			p.retryLater(k, wait)
			return answer{later: true}
		}
		p.scan(inode)
		pid, ok = p.owners[inode]
	}
	if !ok {
		return answer{}
	}
	pr, ok := p.describeRecent(pid, start)
	if ok && inbound {
		if len(p.served) >= maxDescs {
			clear(p.served)
		}
		p.served[k.local] = described{pr, start}
	}
	return answer{p: pr, ok: ok}
}

// retryLater has k looked up again after wait, when the next scan is
// due. The caller holds mu.
func (p *procs) retryLater(k connKey, wait time.Duration) {
	if len(p.pending) >= maxPending || slices.Contains(p.pending, k) {
		return
	}
	p.pending = append(p.pending, k)
	if p.retry == nil && !p.closed {
		p.retry = time.AfterFunc(wait, p.retryPending)
	}
}

// retryPending looks up again the pending conversations whose answer is
// still to come later, unless p was closed meanwhile.
func (p *procs) retryPending() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	ks := p.pending
	p.pending, p.retry = nil, nil
	for _, k := range ks {
		if a, ok := p.known[k]; ok && !a.later {
			continue // the capture goroutine got there first
		}
		p.remember(k, p.lookup(k))
	}
}

// A service's connections all come to one listener, whose process is
// described by reading two files: so what describe read is used again for
// describeTTL, and so is the process lookup found for an address and port
// connected to (served): a service taking thousands of connections a
// second costs a netlink round trip and a description a second for each
// of its ports, not for each connection. A process that exec'd, or a
// listener that changed hands, within describeTTL keeps its former name
// for that long. maxDescs bounds the processes and ports remembered.
const (
	describeTTL = time.Second
	maxDescs    = 1024
)

// described is what describe answered for a pid, and when.
type described struct {
	p  summary.Process
	at time.Time
}

// describeRecent is describe, from descs when it answered for pid within
// describeTTL of now.
func (p *procs) describeRecent(pid int, now time.Time) (summary.Process, bool) {
	if d, ok := p.descs[pid]; ok && now.Sub(d.at) < describeTTL {
		return d.p, true
	}
	pr, ok := p.describe(pid)
	if !ok {
		delete(p.descs, pid)
		return pr, false
	}
	if len(p.descs) >= maxDescs {
		clear(p.descs)
	}
	p.descs[pid] = described{pr, now}
	return pr, true
}

// failure returns the first error of a lookup or of the watching; after
// Close, or from the capture goroutine.
func (p *procs) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// scan rebuilds owners from the fd links of the processes in the
// program's /proc, newest (highest pid) first, and stops once it has seen
// want: the process that has just made a connection is most often the
// newest, and may exit at any moment. Where processes share a socket
// (inherited across fork), the newest owns it.
func (p *procs) scan(want uint32) {
	start := time.Now()
	defer func() { p.scanned = time.Now(); p.scanCost = p.scanned.Sub(start) }()
	clear(p.owners)
	d, err := p.proc.Open(".")
	if err != nil {
		return
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return
	}
	pids := make([]int, 0, len(names))
	for _, name := range names {
		if pid, err := strconv.Atoi(name); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	for i := len(pids) - 1; i >= 0; i-- {
		p.scanFDs(pids[i], strconv.Itoa(pids[i]))
		if _, ok := p.owners[want]; ok {
			return
		}
	}
}

// scanFDs adds the sockets of process pid to owners. A process gone
// meanwhile has none.
func (p *procs) scanFDs(pid int, name string) {
	d, err := p.proc.Open(name + "/fd")
	if err != nil {
		return
	}
	defer d.Close()
	fds, err := d.Readdirnames(-1)
	if err != nil {
		return
	}
	rc, err := d.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(dfd uintptr) {
		for _, fd := range fds {
			n, err := unix.Readlinkat(int(dfd), fd, p.link[:])
			if err != nil {
				continue
			}
			if inode, ok := socketInode(p.link[:n]); ok {
				if _, taken := p.owners[inode]; !taken {
					p.owners[inode] = pid
				}
			}
		}
	})
}

// socketInode reads a /proc/PID/fd link of a socket, "socket:[N]".
func socketInode(link []byte) (uint32, bool) {
	s, ok := bytes.CutPrefix(link, []byte("socket:["))
	if !ok || len(s) < 2 || s[len(s)-1] != ']' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(s[:len(s)-1]), 10, 32)
	return uint32(n), err == nil
}

// describe reads what the summary says of process pid: its command name
// and command line. A process gone meanwhile is not described.
func (p *procs) describe(pid int) (summary.Process, bool) {
	name := strconv.Itoa(pid)
	comm, err := p.proc.ReadFile(name + "/comm")
	if err != nil {
		return summary.Process{}, false
	}
	cmdline, err := p.proc.ReadFile(name + "/cmdline")
	if err != nil {
		return summary.Process{}, false
	}
	return summary.Process{
		Pid:     pid,
		Comm:    strings.TrimSuffix(string(comm), "\n"),
		Cmdline: cmdlineText(cmdline),
	}, true
}

// cmdlineText turns /proc/PID/cmdline (arguments each ended by a NUL)
// into one line, cut to maxCmdline bytes and to valid UTF-8.
func cmdlineText(b []byte) string {
	b = bytes.TrimRight(b, "\x00")
	cut := len(b) > maxCmdline
	if cut {
		b = b[:maxCmdline]
	}
	s := strings.ToValidUTF8(strings.ReplaceAll(string(b), "\x00", " "), "")
	if cut {
		s += "..."
	}
	return s
}
