package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

const (
	// envVMTest is set by make vmtest: only then does TestVM boot VMs
	// (go test ./... would boot them a second time).
	envVMTest = "NSNTRACE_VMTEST"
	// envKernels names the directories (separated by colons) of the
	// bzImage-* files to boot. A kernel whose modules are not built in
	// has them beside it in modules-VERSION/ (see debian-kernel.sh).
	envKernels = "NSNTRACE_VM_KERNELS"
	// envAccel chooses qemu's accelerator; tcg unless asked (nested KVM
	// hangs on the development machines).
	envAccel = "NSNTRACE_VM_ACCEL"
	// envUnprepared, set by make vmtest, names a kernel that should have
	// been booted but could not be prepared (Debian's 6.1 without apt).
	envUnprepared = "NSNTRACE_VM_UNPREPARED"
	// perKernel is the time a kernel's boot and tests may take under TCG.
	perKernel = 3 * time.Minute
)

// vmInit is the initramfs's /init: mount what the tests need, run them,
// power off (qemu -no-reboot exits on reboot).
const vmInit = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null || mdev -s
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
echo "VMTEST-KERNEL $(uname -r)"
# A kernel that comes with modules: load them in the order of
# modules/load; a leading ? marks a soft dependency that may not load
# (crc32c_intel without SSE4.2 under TCG).
# vmtest.skipmods=a.ko,b.ko on the kernel's command line leaves modules
# out, to see nsntrace on a kernel without them.
skip=" $(sed -n 's/.*vmtest\.skipmods=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ') "
if [ -f /modules/load ]; then
	n=0
	while read m; do
		case "$skip" in *" ${m#\?} "*) echo "VMTEST-MODULE-LEFT-OUT ${m#\?}"; continue ;; esac
		case $m in
		'?'*) insmod /modules/${m#?} 2>/dev/null || echo "VMTEST-MODULE-SKIPPED ${m#?}" ;;
		*) if insmod /modules/$m; then n=$((n+1)); else echo "VMTEST-MODULE-FAILED $m"; fi ;;
		esac
	done < /modules/load
	echo "VMTEST-MODULES $n loaded"
fi
PATH=/bin NSNTRACE_IN_VM=1 NSNTRACE_BIN=/bin/nsntrace /vmtest.test -test.v -test.run '^TestInVM$' -test.timeout 150s
echo "VMTEST-EXIT $?"
reboot -f
`

// TestVM boots every kernel of $NSNTRACE_VM_KERNELS with the initramfs and
// judges what TestInVM reports from inside, and the capture it sends back.
func TestVM(t *testing.T) {
	if os.Getenv(envVMTest) != "1" {
		t.Skipf("boots VMs only under make vmtest (%s=1)", envVMTest)
	}
	dir := os.Getenv(envKernels)
	var kernels []string
	for _, d := range filepath.SplitList(dir) {
		if d != "" {
			k, _ := filepath.Glob(filepath.Join(d, "bzImage-*"))
			kernels = append(kernels, k...)
		}
	}
	if len(kernels) == 0 {
		testbed.SkipOrFail(t, "no kernels to boot: %s=%q holds no bzImage-* (CI points it at ../shared/vm/kernels)%s", envKernels, dir,
			map[bool]string{true: "; not prepared: " + os.Getenv(envUnprepared)}[os.Getenv(envUnprepared) != ""])
	}
	qemu := testbed.RequireTool(t, "qemu-system-x86_64")
	testbed.RequireTool(t, "cpio")
	testbed.RequireTool(t, "tshark")
	initrd := buildInitramfs(t)

	var summary []string
	for _, k := range kernels {
		name := strings.TrimPrefix(filepath.Base(k), "bzImage-")
		start := time.Now()
		mods := filepath.Join(filepath.Dir(k), "modules-"+name)
		if _, err := os.Stat(filepath.Join(mods, "load")); err != nil {
			mods = ""
		}
		lacks := lacksNAT(filepath.Join(filepath.Dir(k), "config-"+name), name, mods != "")
		rd := initrd
		if mods != "" {
			rd = withModules(t, initrd, mods)
		}
		ok := t.Run(name, func(t *testing.T) {
			bootAndJudge(t, qemu, k, rd, vmBoot{lacks: lacks}, mods != "")
		})
		what := "traces"
		if mods != "" {
			what += ", its modules loaded"
		}
		if lacks != "" {
			what = "refuses, its config lacking " + lacks
		}
		line := fmt.Sprintf("kernel %s: %s (%s) in %.1f min", name, map[bool]string{true: "PASS", false: "FAIL"}[ok], what, time.Since(start).Minutes())
		summary = append(summary, line)
		fmt.Println("vmtest:", line)
		if mods == "" || lacks != "" {
			continue
		}
		// The same kernel without a feature nsntrace needs: one
		// sentence naming its option, exit 125, nothing left.
		for _, v := range withoutModule {
			start := time.Now()
			ok := t.Run(name+"-"+v.name, func(t *testing.T) { bootAndJudge(t, qemu, k, rd, v.boot, true) })
			line := fmt.Sprintf("kernel %s without %s: %s (refuses, naming %s) in %.1f min", name,
				strings.Join(v.boot.skip, " "), map[bool]string{true: "PASS", false: "FAIL"}[ok], v.boot.lacks, time.Since(start).Minutes())
			summary = append(summary, line)
			fmt.Println("vmtest:", line)
		}
	}
	if u := os.Getenv(envUnprepared); u != "" {
		line := "NOT BOOTED: " + u
		summary = append(summary, line)
		fmt.Println("vmtest:", line)
		if testbed.Required() {
			t.Errorf("%s, and %s=1 requires it", line, testbed.EnvRequirePrivileged)
		}
	}
	t.Logf("vmtest summary:\n%s", strings.Join(summary, "\n"))
}

// buildInitramfs packs busybox, nsntrace, this package's test binary and
// an /etc/passwd (root and nobody: nothing else of /etc) as a newc cpio.
func buildInitramfs(t *testing.T) string {
	t.Helper()
	busybox := testbed.StaticBusybox(t)
	bin := testbed.Binary(t)
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	test := exec.Command("go", "test", "-c", "-o", filepath.Join(root, "vmtest.test"), ".")
	test.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := test.CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v\n%s", err, out)
	}
	copyFile(t, busybox, filepath.Join(root, "bin/busybox"), 0o755)
	copyFile(t, bin, filepath.Join(root, "bin/nsntrace"), 0o755)
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, a := range strings.Fields(string(list)) {
		if a != "busybox" {
			if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeFile(t, filepath.Join(root, "init"), vmInit, 0o755)
	writeFile(t, filepath.Join(root, "etc/passwd"),
		"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644)

	out := filepath.Join(tmp, "initramfs.cpio")
	cmd := exec.Command("sh", "-ec", "find . | LC_ALL=C sort | cpio --quiet -o -H newc --owner 0:0 > "+out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v\n%s", err, b)
	}
	return out
}

// withModules returns initrd with a second newc archive appended that
// holds the directory mods as /modules (the kernel unpacks concatenated
// archives one after the other).
func withModules(t *testing.T, initrd, mods string) string {
	t.Helper()
	tmp := t.TempDir()
	if err := os.Symlink(mods, filepath.Join(tmp, "modules")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "initramfs.cpio")
	copyFile(t, initrd, out, 0o644)
	cmd := exec.Command("sh", "-ec", "find -L modules | LC_ALL=C sort | cpio --quiet -o -L -H newc --owner 0:0 >> "+out)
	cmd.Dir = tmp
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio of %s: %v\n%s", mods, err, b)
	}
	return out
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b), mode)
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// lacksNAT reads the kernel's configuration (config-VERSION beside it) and
// returns the nf_tables NAT options it lacks, or "" (also when there is no
// configuration: then the kernel must trace). Options built as modules
// count when the kernel comes with its modules. Such a kernel cannot trace;
// nsntrace must say so in one sentence instead, and leave nothing.
func lacksNAT(config, version string, modules bool) string {
	b, err := os.ReadFile(config)
	if err != nil {
		return ""
	}
	var major, minor int
	fmt.Sscanf(version, "%d.%d", &major, &minor)
	need := []string{"CONFIG_NFT_NAT", "CONFIG_NFT_MASQ"}
	if major < 5 || major == 5 && minor < 1 {
		// Before 5.1, IPv4 nat chains and masquerade had their own options.
		need = append(need, "CONFIG_NFT_CHAIN_NAT_IPV4", "CONFIG_NFT_MASQ_IPV4")
	}
	var missing []string
	for _, o := range need {
		if !strings.Contains("\n"+string(b), "\n"+o+"=y") &&
			(!modules || !strings.Contains("\n"+string(b), "\n"+o+"=m")) {
			missing = append(missing, o)
		}
	}
	return strings.Join(missing, ", ")
}

// vmBoot is what one boot must show.
type vmBoot struct {
	lacks string   // options the refusal names ("": the kernel must trace)
	skip  []string // modules left out of those the kernel comes with
}

// withoutModule are the boots of a kernel that comes with modules where one
// feature's modules are left out, and the option nsntrace must name.
var withoutModule = []struct {
	name string
	boot vmBoot
}{
	// nf_tables absent: its netlink subsystem answers EOPNOTSUPP.
	{"no-nf_tables", vmBoot{lacks: "CONFIG_NF_TABLES", skip: []string{"nf_tables.ko", "nft_chain_nat.ko", "nft_masq.ko", "nft_ct.ko"}}},
	// nfnetlink absent too: NETLINK_NETFILTER sockets are EPROTONOSUPPORT.
	{"no-nfnetlink", vmBoot{lacks: "CONFIG_NETFILTER_NETLINK", skip: []string{"nfnetlink.ko", "nf_tables.ko", "nft_chain_nat.ko", "nft_masq.ko", "nft_ct.ko"}}},
}

// (veth cannot be left out: the VM's own private internet is made of
// one. rtnl's TestUnknownLinkKind shows the kernel's answer that
// kfeature.Veth reads.)

var reSubtest = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): TestInVM/(\S+)`)

// bootAndJudge boots kernel, collects the console and checks TestInVM's
// report and the capture.
func bootAndJudge(t *testing.T, qemu, kernel, initrd string, b vmBoot, modules bool) {
	lacks := b.lacks
	appendArgs := "console=ttyS0 panic=-1 quiet loglevel=1"
	if lacks != "" {
		appendArgs += " " + cmdlineRefuse
	}
	if len(b.skip) > 0 {
		appendArgs += " vmtest.skipmods=" + strings.Join(b.skip, ",") + " " + cmdlineRefuse + "=" + lacks
	}
	accel := os.Getenv(envAccel)
	if accel == "" {
		accel = "tcg"
	}
	ctx, cancel := context.WithTimeout(context.Background(), perKernel)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", accel, "-nic", "none", "-m", "1024", "-smp", "2",
		"-nographic", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
		"-append", appendArgs)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	console := strings.ReplaceAll(string(out), "\r", "")
	t.Logf("console of %s (%.1f min):\n%s", filepath.Base(kernel), took.Minutes(), consoleWithoutFiles(console))
	if ctx.Err() != nil {
		t.Fatalf("the VM did not finish within %v", perKernel)
	}
	if err != nil {
		t.Fatalf("qemu: %v", err)
	}

	if modules {
		if strings.Contains(console, "VMTEST-MODULE-FAILED") || !strings.Contains(console, "VMTEST-MODULES ") {
			t.Errorf("the VM did not load the kernel's modules (see VMTEST-MODULE lines above)")
		}
	}

	results := map[string]string{}
	for _, l := range strings.Split(console, "\n") {
		if m := reSubtest.FindStringSubmatch(l); m != nil {
			results[m[2]] = m[1]
		}
	}
	names := []string{"wget", "user-nobody", "kill-9", "cleanup"}
	if lacks != "" {
		names = []string{"refuse"}
	}
	for _, name := range names {
		switch r := results[name]; r {
		case "PASS":
			t.Logf("in the VM: %s passed", name)
		case "":
			t.Errorf("in the VM: %s did not report", name)
		default:
			t.Errorf("in the VM: %s: %s (see the console above)", name, r)
		}
	}
	if !strings.Contains(console, "VMTEST-EXIT 0") {
		t.Errorf("TestInVM did not pass as a whole")
	}

	if lacks != "" {
		return
	}
	files := consoleFiles(t, console)
	pcap, ok := files["wget.pcapng"]
	if !ok {
		t.Fatalf("no capture came back from the VM")
	}
	path := filepath.Join(t.TempDir(), "wget.pcapng")
	if err := os.WriteFile(path, pcap, 0o644); err != nil {
		t.Fatal(err)
	}
	for filter, want := range map[string]string{
		`http.request.method == "GET"`: "1",
		`http.response.code == 200`:    "1",
	} {
		o, err := exec.Command("tshark", "-n", "-r", path, "-Y", filter, "-T", "fields", "-e", "frame.number").Output()
		if err != nil {
			t.Errorf("tshark -r the VM's capture: %v", err)
			continue
		}
		if n := fmt.Sprint(len(strings.Fields(string(o)))); n != want {
			t.Errorf("the VM's capture holds %s frames matching %s, want %s", n, filter, want)
		}
	}
}

// consoleFiles decodes the files that emit wrote to the console. Lines of
// other output (kernel messages) inside a block are skipped: they are not
// base64 of the right width.
func consoleFiles(t *testing.T, console string) map[string][]byte {
	files := map[string][]byte{}
	sc := bufio.NewScanner(strings.NewReader(console))
	var name string
	var b64 bytes.Buffer
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, fileBegin):
			name = strings.TrimPrefix(l, fileBegin)
			b64.Reset()
		case l == fileEnd && name != "":
			b, err := base64.StdEncoding.DecodeString(b64.String())
			if err != nil {
				t.Errorf("file %s from the VM: %v", name, err)
			} else {
				files[name] = b
			}
			name = ""
		case name != "":
			b64.WriteString(l)
		}
	}
	return files
}

// consoleWithoutFiles is the console with the base64 blocks cut out.
func consoleWithoutFiles(console string) string {
	var w strings.Builder
	in := false
	for _, l := range strings.Split(console, "\n") {
		switch {
		case strings.HasPrefix(strings.TrimSpace(l), fileBegin):
			in = true
			w.WriteString(l + " (base64 cut)\n")
		case strings.TrimSpace(l) == fileEnd:
			in = false
		case !in:
			w.WriteString(l + "\n")
		}
	}
	return w.String()
}
