package rawcap

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// threadCPU is the CPU time of the calling thread.
func threadCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCapture reports the capture side's CPU time per captured packet
// (the cpu-ns/pkt metric) for 64- and 1514-byte frames on a veth: a sender
// on a thread pinned to CPU 0, the ring's reader pinned to CPU 1.
func BenchmarkCapture(b *testing.B) {
	if runtime.NumCPU() < 2 {
		b.Skip("needs two CPUs")
	}
	testbed.RequirePrivileged(b)
	for _, size := range []int{64, 1514} {
		b.Run(map[int]string{64: "64", 1514: "1514"}[size], func(b *testing.B) {
			a, c := testbed.NewNS(b), testbed.NewNS(b)
			testbed.Veth(b, a, "a0", c, "b0")
			cf, err := c.Open()
			if err != nil {
				b.Fatal(err)
			}
			defer cf.Close()
			var idx int
			c.Do(func() error {
				i, err := netInterfaceIndex("b0")
				idx = i
				return err
			})
			r, err := Open(idx, &Config{NetNS: int(cf.Fd()), BlockTimeout: 10 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			var fd, aIdx int
			a.Do(func() error {
				aIdx, _ = netInterfaceIndex("a0")
				fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
				return err
			})
			defer unix.Close(fd)
			frame := udpFrame([]byte{2, 0, 0, 0, 0, 0x99}, 9, 0, size)

			var captured atomic.Uint64
			ctx, cancel := context.WithCancel(context.Background())
			cpu := make(chan time.Duration, 1)
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var set unix.CPUSet
				set.Set(1)
				unix.SchedSetaffinity(0, &set)
				start := threadCPU()
				r.Run(ctx, func(*Packet) error { captured.Add(1); return nil })
				cpu <- threadCPU() - start
			}()
			sent := make(chan struct{})
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var set unix.CPUSet
				set.Set(0)
				unix.SchedSetaffinity(0, &set)
				sa := &unix.SockaddrLinklayer{Ifindex: aIdx}
				for i := 0; i < b.N; i++ {
					for unix.Sendto(fd, frame, 0, sa) != nil {
						runtime.Gosched()
					}
				}
				close(sent)
			}()
			b.ResetTimer()
			<-sent
			time.Sleep(50 * time.Millisecond)
			cancel()
			d := <-cpu
			b.StopTimer()
			n := captured.Load()
			if n > 0 {
				b.ReportMetric(float64(d.Nanoseconds())/float64(n), "cpu-ns/pkt")
			}
			st, _ := r.Stats()
			b.ReportMetric(float64(st.Drops), "drops")
		})
	}
}
