// Package vmtest boots nsntrace on other kernels under qemu (make vmtest).
//
// TestVM, on the host, packs an initramfs holding only busybox-static, the
// static bin/nsntrace and this package's own test binary (CGO_ENABLED=0),
// and boots every bzImage-* of the directories in $NSNTRACE_VM_KERNELS
// with qemu-system-x86_64 -accel tcg -nic none. A kernel with a
// modules-VERSION directory beside it (Debian 12's 6.1, laid out by
// debian-kernel.sh) gets those modules in a second cpio appended to the
// initramfs, and /init loads them in the order of its load file first. In the VM, TestInVM builds the
// private internet of shared/TESTBED.md in pure Go (rtnl and
// golang.org/x/sys/unix: there is no ip or nft), traces busybox wget, runs
// it as nobody, kills nsntrace with SIGKILL and checks that nothing is
// left, and runs --cleanup. Its go test -v output and the capture (base64
// between markers) come back over the serial console, and tshark on the
// host reads the capture.
//
// # Privileges
//
// TestVM needs no root: qemu emulates the whole machine (TCG; nested KVM
// hangs on the development machines). TestInVM runs as root in the VM.
//
// # Network namespaces
//
// In the VM, TestInVM creates a host namespace H and an upstream namespace
// U joined by a veth; the HTTP server lives in U and nsntrace runs in H.
// The VM has no network card, so nothing can leave it.
package vmtest
