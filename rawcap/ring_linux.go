package rawcap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/socket"
	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/kfeature"
)

// Ring is an AF_PACKET socket with a TPACKET_V3 receive ring bound to one
// interface.
//
// Its socket is not in the Go runtime's poller: the kernel signals the
// socket each time it hands a block over, and the poller's thread would
// wake for each one even while the reader is not waiting for it. The
// reader waits in poll(2) itself instead (wait), on the socket and on an
// eventfd that Wake and a stop write to; fdMu keeps Close from closing
// either descriptor under a user of it.
type Ring struct {
	fdMu    sync.RWMutex
	fd      int // the packet socket; -1 once closed
	event   int // the eventfd; -1 once closed
	ifindex int
	nblocks int
	mem     []byte
	blocks  [][]byte
	cur     int
	w       walker
	done    func() error // RunBlocks's end-of-block callback
	woken   atomic.Bool  // Wake was called: call done
	// netDown says that the kernel unhooked the socket itself (its
	// device went down or away): wait read ENETDOWN in SO_ERROR, and
	// reading clears it there.
	netDown atomic.Bool
	pace    pacer

	closeOnce sync.Once
	closeErr  error

	mu    sync.Mutex
	stats Stats
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Open opens a capture ring on the interface with index ifindex: New, then
// Bind.
func Open(ifindex int, cfg *Config) (*Ring, error) {
	r, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := r.Bind(ifindex); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// New sets up a ring with its filter but binds it to no interface, so it
// receives nothing yet. Allocating a large ring is the slow part of
// opening one (the kernel zeroes it), so a caller may do it while the
// interface is still being created, and Bind later.
func New(cfg *Config) (_ *Ring, err error) {
	c := cfg.withDefaults()
	page := os.Getpagesize()
	if c.BlockSize < page || c.BlockSize&(c.BlockSize-1) != 0 {
		return nil, fmt.Errorf("open ring: block size %d is not a power of two of at least a page", c.BlockSize)
	}
	nblocks := c.RingSize / c.BlockSize
	if nblocks < 2 {
		return nil, fmt.Errorf("open ring: ring size %d holds fewer than two %d-byte blocks", c.RingSize, c.BlockSize)
	}
	if c.SnapLen < 0 {
		return nil, fmt.Errorf("open ring: negative snap length %d", c.SnapLen)
	}
	if c.DropOutgoing {
		c.Filter = dropOutgoing(c.Filter)
	}
	if len(c.Filter) > 0xffff {
		return nil, fmt.Errorf("open ring: filter of %d instructions is too long", len(c.Filter))
	}

	fd, err := packetSocket(c.NetNS)
	if err != nil {
		return nil, err
	}
	r := &Ring{fd: fd, event: -1, nblocks: nblocks, w: walker{snapLen: c.SnapLen}, pace: pacer{tov: c.BlockTimeout}}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	event, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("open ring: %w", os.NewSyscallError("eventfd", err))
	}
	r.event = event
	if err := r.control(func(fd int) error { return r.setup(fd, &c, nblocks) }); err != nil {
		return nil, err
	}
	r.w.scratch = make([]byte, 0, min(c.BlockSize, c.SnapLen+4)+4)
	for i := 0; i < nblocks; i++ {
		r.blocks = append(r.blocks, r.mem[i*c.BlockSize:(i+1)*c.BlockSize])
	}
	return r, nil
}

// packetSocket opens an AF_PACKET socket in network namespace netns (0 or
// less: the thread's), outside the runtime poller (see Ring). The socket
// package opens it in the namespace and registers it with the poller; the
// copy of its descriptor made here (close-on-exec) is the one kept, and
// closing the original takes the socket out of the poller
// (EPOLL_CTL_DEL) before it closes it.
func packetSocket(netns int) (int, error) {
	conn, err := socket.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0, "packet", &socket.Config{NetNS: max(netns, 0)})
	if err != nil {
		return -1, fmt.Errorf("open ring: %w", kfeature.PacketSocket(err))
	}
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("open ring: %w", err)
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, fmt.Errorf("open ring: %w", err)
	}
	if derr != nil {
		return -1, fmt.Errorf("open ring: %w", os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", derr))
	}
	return fd, nil
}

// setup attaches the filter to the socket fd, sets up the ring and maps it
// into r.mem.
func (r *Ring) setup(fd int, c *Config, nblocks int) error {
	if len(c.Filter) > 0 {
		prog := make([]unix.SockFilter, len(c.Filter))
		for i, ins := range c.Filter {
			prog[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
		}
		if err := attachFilter(fd, prog); err != nil {
			if errors.Is(err, unix.ENOMEM) {
				return fmt.Errorf("attach filter: the program of %d instructions exceeds the kernel's socket option memory (net.core.optmem_max): %w", len(prog), err)
			}
			return os.NewSyscallError("setsockopt SO_ATTACH_FILTER", err)
		}
		// Not locked (SO_LOCK_FILTER): unhook replaces the filter to stop.
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return os.NewSyscallError("setsockopt PACKET_VERSION", err)
	}
	tov := c.BlockTimeout.Milliseconds()
	if tov < 1 {
		tov = 1
	}
	const frameSize = 1 << 11 // V3 ignores frames; the kernel only checks the arithmetic
	req := unix.TpacketReq3{
		Block_size:     uint32(c.BlockSize),
		Block_nr:       uint32(nblocks),
		Frame_size:     frameSize,
		Frame_nr:       uint32(c.BlockSize / frameSize * nblocks),
		Retire_blk_tov: uint32(tov),
	}
	if err := setsockoptReq3(fd, &req); err != nil {
		return os.NewSyscallError("setsockopt PACKET_RX_RING", err)
	}
	// No MAP_POPULATE: packet_mmap (net/packet/af_packet.c) already puts
	// every page of the ring into the page tables (vm_insert_page), and
	// populating walked all of them a second time, a tenth of the CPU of
	// a start.
	mem, err := unix.Mmap(fd, 0, c.BlockSize*nblocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return os.NewSyscallError("mmap", err)
	}
	r.mem = mem // unmapped by Close, or by New's clean-up through it
	return nil
}

// Bind starts capturing on the interface with index ifindex (wraps
// bind(2) with ETH_P_ALL). Only now is anything queued: the filter and the
// ring are already in place.
func (r *Ring) Bind(ifindex int) error {
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := r.control(func(fd int) error { return os.NewSyscallError("bind", unix.Bind(fd, sa)) }); err != nil {
		return fmt.Errorf("bind ring: %w", err)
	}
	r.ifindex = ifindex
	return nil
}

// Run delivers packets to fn until ctx is done, then delivers every packet
// the kernel had already accepted, including the block it has not retired
// yet, and returns nil. An error from fn stops Run and is returned. Run must
// not be called concurrently with itself.
func (r *Ring) Run(ctx context.Context, fn func(*Packet) error) error {
	return r.RunBlocks(ctx, fn, nil)
}

// RunBlocks is Run with a second callback: done, if not nil, is called
// after the packets of each block were handed to fn and before the block
// goes back to the kernel. Until then the Data of those packets that are
// InRing stays valid and unchanged, so fn may keep references to it
// instead of copying (a writer that hands them to writev(2) in done). An
// error from done stops RunBlocks and is returned.
func (r *Ring) RunBlocks(ctx context.Context, fn func(*Packet) error, done func() error) error {
	r.done = done
	// A stop wakes a reader waiting in poll(2); the eventfd keeps a
	// signal given before the reader waits.
	stop := context.AfterFunc(ctx, r.signal)
	defer stop()
	for {
		n, err := r.readReady(fn)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return r.drain(fn)
		}
		if r.woken.Swap(false) && r.done != nil {
			if err := r.done(); err != nil {
				return err
			}
		}
		if err := r.wait(r.pace.next(n, time.Now(), r.nblocks)); err != nil {
			return fmt.Errorf("read ring: %w", err)
		}
	}
}

// Wake makes a running RunBlocks call its done callback once soon, even
// when no block is ready: a way to act from the capture's goroutine (flush
// the file, publish counters) while no packets come. It is safe to call
// from any goroutine.
func (r *Ring) Wake() {
	r.woken.Store(true)
	r.signal()
}

// signal ends the reader's wait (or its next one).
func (r *Ring) signal() {
	r.fdMu.RLock()
	defer r.fdMu.RUnlock()
	if r.event >= 0 {
		one := [8]byte{1}
		unix.Write(r.event, one[:]) // EAGAIN: the counter is far from empty
	}
}

// wait waits until a block may be ready or signal was called. With a
// pause (the link is busy: pacer), it sleeps that long instead, woken
// only by signal, not by the blocks the kernel hands over meanwhile, so
// that one wake-up reads several. (A runtime timer instead of poll(2)'s
// timeout for the pause cost the same, measured.)
func (r *Ring) wait(pause time.Duration) error {
	r.fdMu.RLock()
	defer r.fdMu.RUnlock()
	if r.fd < 0 {
		return os.ErrClosed
	}
	fds := []unix.PollFd{{Fd: int32(r.event), Events: unix.POLLIN}, {Fd: int32(r.fd), Events: unix.POLLIN}}
	timeout := -1
	if pause > 0 {
		fds, timeout = fds[:1], int(pause/time.Millisecond)
	}
	if _, err := poll(fds, timeout); err != nil {
		return err
	}
	if fds[0].Revents&unix.POLLIN != 0 {
		var b [8]byte
		unix.Read(r.event, b[:]) // resets it; EAGAIN: read already
	}
	if len(fds) > 1 && fds[1].Revents&unix.POLLERR != 0 {
		// The kernel unhooked the socket (packet_notifier sets
		// ENETDOWN): read the error, or poll(2) reports it again at
		// once, and remember it for unhook.
		e, err := unix.GetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return os.NewSyscallError("getsockopt SO_ERROR", err)
		}
		if unix.Errno(e) == unix.ENETDOWN {
			r.netDown.Store(true)
		}
	}
	return nil
}

// poll is poll(2), again after EINTR.
func poll(fds []unix.PollFd, timeoutMs int) (int, error) {
	for {
		n, err := unix.Poll(fds, timeoutMs)
		if err != unix.EINTR {
			if err != nil {
				return n, os.NewSyscallError("poll", err)
			}
			return n, nil
		}
	}
}

// readReady delivers and releases every retired block, in order, and
// says how many.
func (r *Ring) readReady(fn func(*Packet) error) (int, error) {
	for n := 0; ; n++ {
		b := r.blocks[r.cur]
		if loadStatus(b)&unix.TP_STATUS_USER == 0 {
			return n, nil
		}
		err := r.w.walk(b, loadNumPkts(b), fn)
		if r.done != nil {
			// Even after an error: nothing may point into the block once
			// the kernel has it back.
			if derr := r.done(); err == nil {
				err = derr
			}
		}
		releaseBlock(b)
		r.cur = (r.cur + 1) % len(r.blocks)
		if err != nil {
			return n + 1, err
		}
	}
}

// drain stops the socket from receiving and delivers what it holds.
func (r *Ring) drain(fn func(*Packet) error) error {
	if err := r.unhook(); err != nil {
		return err
	}
	for {
		if _, err := r.readReady(fn); err != nil {
			return err
		}
		b := r.blocks[r.cur]
		if loadStatus(b)&unix.TP_STATUS_USER != 0 {
			// The kernel's block timer retired it since readReady looked
			// (it still runs after the unhook): deliver it as retired.
			continue
		}
		// No writer is left (see unhook), so the open block's num_pkts
		// counts packets whose headers and data are complete. A block
		// released but not reopened reads 0 (releaseBlock).
		n := loadNumPkts(b)
		if n == 0 {
			return nil
		}
		err := r.w.walk(b, n, fn)
		if r.done != nil {
			if derr := r.done(); err == nil {
				err = derr
			}
		}
		return err
	}
}

// Two EtherTypes nothing sends (IEEE 802 local experimental 1 and 2): the
// socket is hooked for them while it stops.
const (
	etherTypeLocalExp1 = unix.ETH_P_802_EX1
	etherTypeLocalExp2 = 0x88b6
)

// unhook makes sure that, when it returns, the kernel writes nothing more
// into the ring and its counters stay still.
//
// bind(2) cannot unhook a packet socket: packet_bind passes
// "sll_protocol ? : po->num", so protocol 0 keeps ETH_P_ALL, and ifindex 0
// then hooks every interface of the namespace. Instead:
//
//  1. A filter that accepts nothing replaces ours. tpacket_rcv runs the
//     filter (run_filter, under RCU) before it touches the ring or counts
//     a packet, so every call that starts from now on leaves the ring
//     alone, whatever it is hooked to.
//  2. Calls that started earlier may still be copying into the ring. A
//     re-bind to another protocol unregisters the hook with
//     __unregister_prot_hook(sk, true), whose synchronize_net() waits for
//     them all. It only does that when the hook is registered
//     (po->running); the kernel unhooks a socket by itself, without
//     waiting, when its device goes down or away (packet_notifier), and
//     says so with ENETDOWN in SO_ERROR. Then the first bind registers a
//     hook again without waiting, and a second one, to another EtherType,
//     unregisters it and waits. Both EtherTypes are ones nothing sends,
//     and the filter rejects them anyway.
func (r *Ring) unhook() error {
	return r.control(func(fd int) error {
		reject := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
		if err := attachFilter(fd, reject); err != nil {
			return os.NewSyscallError("setsockopt SO_ATTACH_FILTER (stop)", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(etherTypeLocalExp1)}); err != nil {
			return os.NewSyscallError("bind (stop)", err)
		}
		// Read after the bind: a device that went down between the filter
		// and the bind is seen too. Reading clears it (sock_error).
		e, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return os.NewSyscallError("getsockopt SO_ERROR", err)
		}
		if unix.Errno(e) != unix.ENETDOWN && !r.netDown.Load() {
			return nil
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(etherTypeLocalExp2)}); err != nil {
			return os.NewSyscallError("bind (stop)", err)
		}
		return nil
	})
}

// control runs fn with the socket's fd, which a concurrent Close cannot
// close (and the process reuse) under it.
func (r *Ring) control(fn func(fd int) error) error {
	r.fdMu.RLock()
	defer r.fdMu.RUnlock()
	if r.fd < 0 {
		return os.ErrClosed
	}
	return fn(r.fd)
}

// Stats returns running totals of the kernel's counters.
func (r *Ring) Stats() (Stats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var st *unix.TpacketStatsV3
	err := r.control(func(fd int) (err error) {
		st, err = unix.GetsockoptTpacketStatsV3(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
		return os.NewSyscallError("getsockopt PACKET_STATISTICS", err)
	})
	if err != nil {
		return r.stats, fmt.Errorf("read ring statistics: %w", err)
	}
	r.stats.Packets += uint64(st.Packets)
	r.stats.Drops += uint64(st.Drops)
	r.stats.FreezeQueue += uint64(st.Freeze_q_cnt)
	return r.stats, nil
}

// Close unmaps the ring and closes the socket. It is idempotent.
func (r *Ring) Close() error {
	r.closeOnce.Do(func() {
		r.signal() // a reader waiting in poll(2) returns, and lets go of fdMu
		r.fdMu.Lock()
		err := os.NewSyscallError("close", unix.Close(r.fd))
		if r.event >= 0 {
			unix.Close(r.event)
		}
		r.fd, r.event = -1, -1
		r.fdMu.Unlock()
		if r.mem != nil {
			if merr := unix.Munmap(r.mem); merr != nil && err == nil {
				err = os.NewSyscallError("munmap", merr)
			}
		}
		r.closeErr = err
	})
	return r.closeErr
}
