//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// The end-to-end tests trace this test binary itself as the program: with
// helperEnv set, TestMain runs the steps given as arguments instead of the
// tests. A step list like "udp 10.77.0.1:7 hi touch F wait G exit 3" makes
// traffic whose every packet the test can predict, without depending on
// ping or nc being installed.
const helperEnv = "NSNTRACE_E2E_HELPER"

func helperMain(args []string) int {
	for len(args) > 0 {
		step := args[0]
		need := map[string]int{"udp": 2, "ping": 2, "touch": 1, "wait": 1, "exit": 1, "sleep": 1, "ignore-term": 0, "token": 1, "udp-forever": 2}[step]
		if len(args) < 1+need {
			fmt.Fprintf(os.Stderr, "helper: %s needs %d arguments\n", step, need)
			return 2
		}
		p := args[1 : 1+need]
		args = args[1+need:]
		var err error
		switch step {
		case "udp": // udp ADDR:PORT PAYLOAD: one datagram to an echo server and its echo
			err = helperUDP(p[0], p[1])
		case "udp-forever": // udp-forever ADDR:PORT PAYLOAD: a datagram every 20 ms, never ending
			err = helperUDPForever(p[0], p[1])
		case "ping": // ping ADDR COUNT
			n, _ := strconv.Atoi(p[1])
			err = helperPing(p[0], n)
		case "touch":
			err = os.WriteFile(p[0], nil, 0o644)
		case "wait": // wait FILE: until the test creates it
			for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
				if _, serr := os.Stat(p[0]); serr == nil {
					break
				}
				if time.Now().After(deadline) {
					err = fmt.Errorf("%s never appeared", p[0])
					break
				}
			}
		case "sleep":
			var d time.Duration
			if d, err = time.ParseDuration(p[0]); err == nil {
				time.Sleep(d)
			}
		case "ignore-term":
			signal.Ignore(unix.SIGTERM)
		case "token": // token WORD: only marks the process's command line
		case "exit":
			n, _ := strconv.Atoi(p[0])
			return n
		default:
			err = fmt.Errorf("unknown step %q", step)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "helper: %s: %v\n", step, err)
			return 1
		}
	}
	return 0
}

func helperUDP(addr, payload string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for try := 0; try < 5; try++ {
		if _, err := c.Write([]byte(payload)); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		if err == nil {
			if string(buf[:n]) != payload {
				return fmt.Errorf("echo %q, sent %q", buf[:n], payload)
			}
			fmt.Printf("udp echo: %s\n", buf[:n])
			return nil
		}
	}
	return fmt.Errorf("no echo from %s", addr)
}

func helperPing(addr string, count int) error {
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return err
	}
	defer c.Close()
	dst := &net.IPAddr{IP: net.ParseIP(addr)}
	id := os.Getpid() & 0xffff
	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("nsntrace-e2e")}}
		b, err := m.Marshal(nil)
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(b, dst); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return fmt.Errorf("no reply to echo %d: %w", seq, err)
			}
			r, err := icmp.ParseMessage(1, buf[:n])
			if err != nil {
				continue
			}
			if e, ok := r.Body.(*icmp.Echo); ok && r.Type == ipv4.ICMPTypeEchoReply && e.Seq == seq {
				fmt.Printf("echo reply %d from %v\n", seq, from)
				break
			}
		}
	}
	return nil
}

func helperUDPForever(addr, payload string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		// Errors (ICMP unreachable reported on the socket) do not stop it.
		c.Write([]byte(payload))
		time.Sleep(20 * time.Millisecond)
	}
}
