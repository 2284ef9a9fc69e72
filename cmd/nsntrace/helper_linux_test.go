//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
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
		need := map[string]int{"udp": 2, "ping": 2, "touch": 1, "wait": 1, "exit": 1, "sleep": 1, "ignore-term": 0, "term-exit": 1, "token": 1, "udp-forever": 2, "serve": 1, "dns": 1, "connect": 1, "lo-echo": 1, "whoami": 1}[step]
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
		case "term-exit": // term-exit N: SIGTERM makes the process exit with status N
			n, _ := strconv.Atoi(p[0])
			c := make(chan os.Signal, 1)
			signal.Notify(c, unix.SIGTERM)
			go func() { <-c; os.Exit(n) }()
		case "serve": // serve ADDR: an HTTP server for the rest of the process's life
			err = helperServe(p[0])
		case "whoami": // whoami PORT: TCP and UDP servers on PORT that answer each client its own address
			err = helperWhoami(p[0])
		case "dns": // dns ADDR:PORT|resolv.conf: one query over UDP and one over TCP; prints whether answered
			err = helperDNS(p[0])
		case "connect": // connect ADDR:PORT: prints whether a TCP connection is accepted
			c, cerr := net.DialTimeout("tcp", p[0], 3*time.Second)
			fmt.Printf("connect %s: %v\n", p[0], cerr == nil)
			if cerr == nil {
				c.Close()
			}
		case "lo-echo": // lo-echo PAYLOAD: a TCP echo server on 127.0.0.1 and one exchange with it
			err = helperLoopbackEcho(p[0])
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
	var errs []error
	for try := 0; try < 5; try++ {
		if _, err := c.Write([]byte(payload)); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		errs = append(errs, err)
		if err == nil {
			if string(buf[:n]) != payload {
				return fmt.Errorf("echo %q, sent %q", buf[:n], payload)
			}
			fmt.Printf("udp echo: %s\n", buf[:n])
			return nil
		}
	}
	return fmt.Errorf("no echo from %s to %s: %v", addr, c.LocalAddr(), errors.Join(errs...))
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

// helperServeBody is what a server started by the "serve" step answers.
const helperServeBody = "served from inside a trace\n"

func helperServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, helperServeBody)
	}))
	return nil
}

// helperWhoami answers every TCP connection and UDP datagram to port on
// any address with the client's address as the program sees it.
func helperWhoami(port string) error {
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, c.RemoteAddr().String())
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(from.String()), from)
		}
	}()
	return nil
}

// helperDNS prints "dns udp ADDR: BOOL" and "dns tcp ADDR: BOOL", whether
// a query for www.example.test got an answer. A refused or silent server
// is false; the deadlines only bound the wait.
func helperDNS(addr string) error {
	if addr == "resolv.conf" { // the first nameserver of /etc/resolv.conf
		b, err := os.ReadFile("/etc/resolv.conf")
		if err != nil {
			return err
		}
		addr = ""
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "nameserver" && addr == "" {
				addr = net.JoinHostPort(f[1], "53")
			}
		}
	}
	fmt.Printf("dns udp %s: %v\n", addr, dnsAnswered("udp", addr))
	fmt.Printf("dns tcp %s: %v\n", addr, dnsAnswered("tcp", addr))
	return nil
}

func dnsAnswered(network, addr string) bool {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x5a5a, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("www.example.test."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		return false
	}
	c, err := net.DialTimeout(network, addr, 3*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if network == "tcp" {
		q = append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)
	}
	if _, err := c.Write(q); err != nil {
		return false
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	return err == nil && n >= 12
}

// helperLoopbackEcho starts a TCP echo server on 127.0.0.1, sends it
// payload over one connection, reads the echo and closes, the client
// first; it returns once the server saw the connection end.
func helperLoopbackEcho(payload string) error {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	served := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c)
		served <- err
	}()
	c, err := net.DialTimeout("tcp4", l.Addr().String(), 3*time.Second)
	if err != nil {
		return err
	}
	if _, err := c.Write([]byte(payload)); err != nil {
		c.Close()
		return err
	}
	buf := make([]byte, len(payload))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = io.ReadFull(c, buf)
	c.Close()
	if err != nil {
		return err
	}
	if string(buf) != payload {
		return fmt.Errorf("echo %q, sent %q", buf, payload)
	}
	if err := <-served; err != nil {
		return err
	}
	fmt.Printf("lo echo: %s\n", buf)
	return nil
}
