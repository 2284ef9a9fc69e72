package vmtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/testbed"
	"github.com/nsntrace/nsntrace/rtnl"
)

// envInVM is set by the VM's /init: only there does TestInVM run.
const envInVM = "NSNTRACE_IN_VM"

// The private internet inside the VM.
var (
	upstreamAddr = netip.MustParsePrefix("10.77.0.1/24")
	hostAddr     = netip.MustParsePrefix("10.77.0.2/24")
)

const (
	// cmdlineRefuse on the kernel command line says that the kernel
	// cannot trace (its configuration lacks NAT).
	cmdlineRefuse = "vmtest.refuse"
	httpPort      = 8080
	httpBody      = "hello from upstream in the VM\n"
	uplinkH       = "uplink0"
	fileBegin     = "VMTEST-FILE "
	fileEnd       = "VMTEST-END"
)

// internet is H and U joined by a veth, with an HTTP server in U.
type internet struct {
	h, u *netns
	link *rtnl.Link
	srv  *http.Server
	// links are H's links before any run: lo, the uplink and the
	// fallback devices the kernel adds to every namespace (sit0 ...).
	links map[string]bool
}

func newInternet(t *testing.T) *internet {
	t.Helper()
	var in internet
	var err error
	if in.h, err = newNetNS("H"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.h.f.Close() })
	if in.u, err = newNetNS("U"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.u.f.Close() })
	// rtnl.Setup, run in U with H as the "program's" namespace, makes
	// exactly the uplink: U's end with the gateway address, H's end with
	// its address and a default route via U.
	err = in.u.do(func() error {
		var err error
		in.link, err = rtnl.Setup(rtnl.Plan{HostIf: "down0", PeerIf: uplinkH, HostAddr: upstreamAddr, PeerAddr: hostAddr}, in.h.fd())
		return err
	})
	if err != nil {
		t.Fatalf("link H and U: %v", err)
	}
	t.Cleanup(func() { in.link.Close() })
	err = in.h.do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)
	})
	if err != nil {
		t.Fatalf("enable forwarding in H: %v", err)
	}
	var l net.Listener
	err = in.u.do(func() error {
		var err error
		l, err = net.Listen("tcp", netip.AddrPortFrom(upstreamAddr.Addr(), httpPort).String())
		return err
	})
	if err != nil {
		t.Fatalf("listen in U: %v", err)
	}
	in.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, httpBody)
	})}
	go in.srv.Serve(l) // ends with Close below
	t.Cleanup(func() { in.srv.Close() })
	names, err := in.linkNames()
	if err != nil {
		t.Fatal(err)
	}
	in.links = map[string]bool{}
	for _, n := range names {
		in.links[n] = true
	}
	return &in
}

func (in *internet) url() string {
	return fmt.Sprintf("http://%s:%d/", upstreamAddr.Addr(), httpPort)
}

// nsntrace returns nsntrace args... as a command to start in H.
func (in *internet) nsntrace(args ...string) *exec.Cmd {
	bin := os.Getenv("NSNTRACE_BIN")
	if bin == "" {
		bin = "/bin/nsntrace"
	}
	return exec.Command(bin, args...)
}

// run runs cmd in H and returns its exit code and output.
func (in *internet) run(t *testing.T, cmd *exec.Cmd) (int, string, string) {
	t.Helper()
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := in.h.do(cmd.Start); err != nil {
		t.Fatalf("start %s: %v", cmd, err)
	}
	err := cmd.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	t.Logf("%s: exit %d\nstdout: %s\nstderr: %s", strings.Join(cmd.Args, " "), code, so.String(), se.String())
	return code, so.String(), se.String()
}

// leftovers lists what a run may have left in H: nft tables, links other
// than lo and the uplink, and processes whose command line holds token.
func (in *internet) leftovers(token string) ([]string, error) {
	var left []string
	c, err := nftables.New(nftables.WithNetNSFd(in.h.fd()))
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
	tables, err := c.ListTables()
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPROTONOSUPPORT) {
		err = nil // a kernel without nf_tables has none
	}
	if err != nil {
		return nil, fmt.Errorf("list nft tables: %w", err)
	}
	for _, tb := range tables {
		left = append(left, "nft table "+tb.Name)
	}
	names, err := in.linkNames()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if !in.links[n] {
			left = append(left, "link "+n)
		}
	}
	if token != "" {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return nil, err
		}
		for _, d := range ents {
			b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
			if err == nil && bytes.Contains(b, []byte(token)) {
				left = append(left, fmt.Sprintf("process %s: %q", d.Name(), bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
			}
		}
	}
	return left, nil
}

// linkNames lists H's links.
func (in *internet) linkNames() ([]string, error) {
	rc, err := rtnetlink.Dial(&netlink.Config{NetNS: in.h.fd()})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	links, err := rc.Link.List()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var names []string
	for _, l := range links {
		if l.Attributes != nil {
			names = append(names, l.Attributes.Name)
		}
	}
	return names, nil
}

// emit writes a file to stdout (the serial console) as base64 between
// markers, for TestVM to pick up.
func emit(t *testing.T, name, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("read %s: %v", path, err)
		return
	}
	s := base64.StdEncoding.EncodeToString(b)
	var w strings.Builder
	fmt.Fprintf(&w, "\n%s%s\n", fileBegin, name)
	for len(s) > 0 {
		n := min(len(s), 76)
		w.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	w.WriteString(fileEnd + "\n")
	os.Stdout.WriteString(w.String())
}

// TestInVM runs inside the VM that TestVM boots.
func TestInVM(t *testing.T) {
	if os.Getenv(envInVM) != "1" {
		t.Skipf("runs only inside the VM that make vmtest boots (%s=1)", envInVM)
	}
	in := newInternet(t)
	url := in.url()

	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmdline), cmdlineRefuse) {
		// The kernel's configuration lacks NAT (TestVM read it): one
		// sentence, exit 125, nothing left.
		t.Run("refuse", func(t *testing.T) {
			code, _, stderr := in.run(t, in.nsntrace("-o", "/tmp/refused.pcapng", "wget", "-q", "-O", "-", url))
			if code != 125 || !strings.Contains(stderr, "the kernel lacks") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("want exit 125 and one line naming what the kernel lacks")
			}
			// vmtest.refuse=OPTION: the sentence must name that option.
			for _, f := range strings.Fields(string(cmdline)) {
				if opt, ok := strings.CutPrefix(f, cmdlineRefuse+"="); ok && !strings.Contains(stderr, opt) {
					t.Errorf("the refusal does not name %s", opt)
				}
			}
			left, err := in.leftovers("")
			if err != nil {
				t.Fatal(err)
			}
			if len(left) > 0 {
				t.Errorf("left behind: %s", strings.Join(left, "; "))
			}
		})
		return
	}

	t.Run("wget", func(t *testing.T) {
		code, stdout, _ := in.run(t, in.nsntrace("-o", "/tmp/wget.pcapng", "wget", "-q", "-O", "-", url))
		if code != 0 || stdout != httpBody {
			t.Fatalf("traced wget: exit %d, page %q", code, stdout)
		}
		emit(t, "wget.pcapng", "/tmp/wget.pcapng")
	})

	t.Run("user-nobody", func(t *testing.T) {
		code, stdout, _ := in.run(t, in.nsntrace("-u", "nobody", "-o", "/tmp/nobody.pcapng", "sh", "-c", "id -u; wget -q -O - "+url))
		if code != 0 || stdout != "65534\n"+httpBody {
			t.Fatalf("traced wget as nobody: exit %d, output %q", code, stdout)
		}
	})

	t.Run("kill-9", func(t *testing.T) {
		const token = "4242"
		cmd := in.nsntrace("-o", "/tmp/killed.pcapng", "sleep", token)
		var se testbed.SyncBuffer
		cmd.Stderr = &se
		if err := in.h.do(cmd.Start); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() {
			cmd.Wait() // killed below: its status says nothing
			close(exited)
		}()
		started := false
	wait:
		for deadline := time.After(30 * time.Second); ; {
			select {
			case <-exited:
				break wait
			case <-deadline:
				break wait
			case <-time.After(50 * time.Millisecond):
				if strings.Contains(se.String(), "ctrl-c") {
					started = true
					break wait
				}
			}
		}
		if !started {
			cmd.Process.Kill() // it may have exited already
			<-exited
			t.Fatalf("the trace never started: %s", se.String())
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-exited
		killed := time.Now()
		var left []string
		for {
			var err error
			if left, err = in.leftovers(token); err != nil {
				t.Fatal(err)
			}
			if len(left) == 0 || time.Since(killed) > 3*time.Second {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(left) > 0 {
			t.Errorf("3 s after kill -9 of nsntrace, still there: %s", strings.Join(left, "; "))
		} else {
			t.Logf("nothing left %.1f s after kill -9", time.Since(killed).Seconds())
		}
	})

	t.Run("cleanup", func(t *testing.T) {
		code, _, stderr := in.run(t, in.nsntrace("--cleanup"))
		if code != 0 || !strings.Contains(stderr, "Nothing left behind") {
			t.Errorf("--cleanup after the runs: exit %d: %s", code, stderr)
		}
		left, err := in.leftovers("")
		if err != nil {
			t.Fatal(err)
		}
		if len(left) > 0 {
			t.Errorf("after --cleanup, still there: %s", strings.Join(left, "; "))
		}
	})
}
