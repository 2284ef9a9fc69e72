//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// minimalImage is a root file system holding only busybox, its applet
// links, nsntrace and an /etc/passwd, as on an appliance image.
type minimalImage struct {
	root string
	// passwd is /etc/passwd; resolvConf, if not "", is
	// /etc/resolv.conf; ro mounts the image read-only (with tmpfs
	// on /tmp and /run when they exist); noRun removes /run; tmpSize is
	// the size of the tmpfs on /tmp ("" for the default).
	passwd     string
	resolvConf string
	ro         bool
	noRun      bool
	tmpSize    string
}

// build creates the image under dir.
func (m *minimalImage) build(t *testing.T, dir, busybox, nsntrace string) {
	t.Helper()
	m.root = filepath.Join(dir, "root")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "run"} {
		if d == "run" && m.noRun {
			continue
		}
		if err := os.MkdirAll(filepath.Join(m.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(m.root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	copyFile(t, busybox, filepath.Join(m.root, "bin/busybox"), 0o755)
	copyFile(t, nsntrace, filepath.Join(m.root, "bin/nsntrace"), 0o755)
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, a := range strings.Fields(string(list)) {
		if a == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(m.root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(m.root, "etc/passwd"), []byte(m.passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	if m.resolvConf != "" {
		if err := os.WriteFile(filepath.Join(m.root, "etc/resolv.conf"), []byte(m.resolvConf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// script returns the shell commands that mount the image's file systems
// and run pre, then cmd chrooted into it. It runs under `unshare -m --propagation
// private`, so the mounts go with that mount namespace, whatever happens.
func (m *minimalImage) script(pre, cmd string) string {
	r := m.root
	var s strings.Builder
	// The image's directory becomes a shared mount, as / is on a
	// systemd host: a mount that nsntrace's namespace failed to make
	// private would show up here (but, being inside unshare's
	// namespace, never on the host).
	fmt.Fprintf(&s, "mount --bind %[1]s %[1]s\nmount --make-shared %[1]s\n", filepath.Dir(r))
	if m.ro {
		fmt.Fprintf(&s, "mount --bind %[1]s %[1]s\nmount -o remount,bind,ro %[1]s\n", r)
	}
	tmpOpt := "mode=1777"
	if m.tmpSize != "" {
		tmpOpt += ",size=" + m.tmpSize
	}
	fmt.Fprintf(&s, "mount -t proc proc %[1]s/proc\nmount -t sysfs sys %[1]s/sys\nmount --rbind /dev %[1]s/dev\nmount -t tmpfs -o %[2]s tmp %[1]s/tmp\n", r, tmpOpt)
	if !m.noRun {
		fmt.Fprintf(&s, "mount -t tmpfs run %s/run\n", r)
	}
	fmt.Fprintf(&s, "%[1]sbefore=$(grep -c %[2]s /proc/self/mountinfo)\nset +e\nchroot %[2]s %[3]s\necho \"exit=$?\"\n", pre, r, cmd)
	fmt.Fprintf(&s, "echo \"mounts: $before $(grep -c %s /proc/self/mountinfo)\"\n", r)
	return s.String()
}

const passwdRoot = "root:x:0:0:root:/root:/bin/sh\n"

// TestMinimalImage traces busybox wget from a chroot holding only busybox
// and nsntrace: no /etc/resolv.conf, services, nsswitch.conf or group, and
// variants with /run missing, a read-only image and a full /tmp. Each
// trace works, or fails with exit 125 and one sentence saying what is
// missing, leaving nothing behind. Before, every such trace died of a
// nil-pointer panic in child.Start that hid the real error (the chroot's
// root is not a mount point, so it could not be made private the usual
// way).
func TestMinimalImage(t *testing.T) {
	e := newE2E(t, nil)
	busybox := testbed.StaticBusybox(t)
	testbed.RequireTool(t, "unshare")
	url := fmt.Sprintf("http://%s:%d/", testbed.ServerAddr, testbed.HTTPPort)

	for _, tc := range []struct {
		name string
		img  minimalImage
		args string
		// fill fills /tmp before the trace; fail is the sentence
		// expected with exit 125, "" for a trace that works.
		fill bool
		fail string
	}{
		{name: "bare", img: minimalImage{passwd: passwdRoot}},
		{name: "no-run", img: minimalImage{passwd: passwdRoot, noRun: true}},
		// A resolver on loopback: nsntrace covers /etc/resolv.conf
		// with a bind mount in the program's namespace.
		{name: "loopback-resolver", img: minimalImage{passwd: passwdRoot, resolvConf: "nameserver 127.0.0.53\n"}},
		{name: "read-only", img: minimalImage{passwd: passwdRoot, ro: true}},
		{name: "read-only-no-run", img: minimalImage{passwd: passwdRoot, ro: true, noRun: true},
			fail: "nsntrace needs a writable /run"},
		{name: "user-nobody", img: minimalImage{passwd: passwdRoot + "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
			args: "-u nobody"},
		{name: "full-tmp", img: minimalImage{passwd: passwdRoot, tmpSize: "8k"}, fill: true,
			fail: "/tmp/a.pcapng is incomplete"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := tc.img
			img.build(t, t.TempDir(), busybox, e.bin)
			out := filepath.Join(t.TempDir(), "a.pcapng")
			cmd := fmt.Sprintf("nsntrace %s -o /tmp/a.pcapng wget -q -O - %s", tc.args, url)
			pre := ""
			if tc.fill {
				pre = fmt.Sprintf("dd if=/dev/zero of=%s/tmp/fill bs=1k 2>/dev/null || true\n", img.root)
			}
			script := img.script(pre, cmd) + fmt.Sprintf("cp %s/tmp/a.pcapng %s 2>/dev/null || true\necho tmp: $(ls -A %s/tmp)\n", img.root, out, img.root)
			b, err := e.in.H.Command("unshare", "-m", "--propagation", "private", "sh", "-ec", script).CombinedOutput()
			t.Logf("%s\n%s", cmd, b)
			if err != nil {
				t.Fatalf("run in the image: %v", err)
			}
			got := string(b)
			if strings.Contains(got, "panic:") {
				t.Fatal("nsntrace panicked")
			}
			if strings.Contains(got, ".nsntrace-") {
				t.Errorf("temporary file left in /tmp")
			}
			e.clean("")
			var before, after int
			if _, err := fmt.Sscanf(got[strings.Index(got, "mounts: "):], "mounts: %d %d", &before, &after); err != nil || before != after {
				t.Errorf("mounts of the image before and after the trace: %d, %d (%v): one leaked out of nsntrace's namespace", before, after, err)
			}
			if tc.fail != "" {
				if !strings.Contains(got, "exit=125") || !strings.Contains(got, tc.fail) {
					t.Fatalf("want exit 125 and %q", tc.fail)
				}
				return
			}
			if !strings.Contains(got, "exit=0") || !strings.Contains(got, testbed.HTTPBody) {
				t.Fatalf("the trace did not fetch %s", url)
			}
			if n := count(t, out, "http.request.method == \"GET\""); n != 1 {
				t.Errorf("%d HTTP GETs in the capture, want 1", n)
			}
			if n := count(t, out, "http.response.code == 200"); n != 1 {
				t.Errorf("%d HTTP 200 responses in the capture, want 1", n)
			}
		})
	}
}
