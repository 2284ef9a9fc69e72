# nsntrace build, test and benchmark entry points.
GO       ?= go
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)

.PHONY: all build cross docs test test-cpus vmtest vm-kernel-debian vet bench install clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/nsntrace ./cmd/nsntrace

# The static binary for every Linux CPU a device may run, as
# bin/linux-ARCH[vN]/nsntrace.
CROSS := amd64 arm64 arm:6 arm:7 386 mips mipsle mips64 riscv64 ppc64le s390x
cross:
	@set -e; for t in $(CROSS); do \
		arch=$${t%%:*}; arm=$${t#*:}; dir=bin/linux-$$arch; \
		if [ "$$arm" != "$$t" ]; then dir=$$dir"v"$$arm; else arm=; fi; \
		echo "GOARCH=$$arch$${arm:+ GOARM=$$arm} -> $$dir/nsntrace"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch GOARM=$$arm $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$dir/nsntrace ./cmd/nsntrace; \
	done

# The man page and shell completions, under bin/docs, from a build of the
# command with the generator in it (tag gendocs); the shipped binary has
# no generator.
docs:
	$(GO) run -tags gendocs -ldflags '-X main.version=$(VERSION)' ./cmd/nsntrace --gen-docs $(CURDIR)/bin/docs

vet:
	test -z "$$(gofmt -l .)" || { gofmt -l .; echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags gendocs ./cmd/nsntrace
	CGO_ENABLED=0 $(GO) build ./...
	# 32-bit and big-endian: code and tests must at least build there.
	CGO_ENABLED=0 GOARCH=mips $(GO) vet ./...

SOLO_TESTS := TestForwardRecordOfDeletedNamespace

# The whole suite. Privileged tests need root; with NSNTRACE_REQUIRE_PRIVILEGED=1
# (set by .ci/run) a test that would skip for lack of privileges fails instead.
test: vet build
	NSNTRACE_BIN=$(CURDIR)/bin/nsntrace $(GO) test -count=1 -timeout 20m -skip '^$(SOLO_TESTS)$$' ./...
	# Alone: it waits for the kernel to hand a freed namespace inode out
	# again, which other packages' namespaces would take and keep.
	$(GO) test -count=1 -run '^$(SOLO_TESTS)$$' ./nft
	$(GO) test -count=1 -tags gendocs -run TestGenDocs ./cmd/nsntrace
	$(MAKE) test-cpus
	$(MAKE) vmtest

# nsntrace on other kernels: qemu-system-x86_64 (TCG; NSNTRACE_VM_ACCEL=kvm
# to ask for KVM) boots each bzImage-* of $$NSNTRACE_VM_KERNELS (directories
# separated by colons) and Debian 12's 6.1 kernel with its modules, laid
# out by vm-kernel-debian, with an initramfs of busybox-static,
# bin/nsntrace and internal/vmtest's test binary, at most 3 minutes each
# (see internal/vmtest). Without kernels it says so and passes, unless
# NSNTRACE_REQUIRE_PRIVILEGED=1. If the Debian kernel cannot be prepared
# (no apt, not Debian 12) it says so and boots the others; under
# NSNTRACE_REQUIRE_PRIVILEGED=1 (CI, which has apt) TestVM then fails.
VM_KERNEL_CACHE := $(CURDIR)/bin/vm-kernels
vm-kernel-debian:
	internal/vmtest/debian-kernel.sh $(VM_KERNEL_CACHE)

vmtest: build
	@if internal/vmtest/debian-kernel.sh $(VM_KERNEL_CACHE); then deb=$(VM_KERNEL_CACHE); unprep=; else \
		deb=; unprep="Debian 12's 6.1 kernel (internal/vmtest/debian-kernel.sh failed, see above)"; \
		echo "vmtest: WARNING: $$unprep: no 6.x kernel will be booted"; fi; \
	echo "NSNTRACE_VM_KERNELS=$${NSNTRACE_VM_KERNELS}$${deb:+:$$deb}"; \
	NSNTRACE_VM_KERNELS="$${NSNTRACE_VM_KERNELS}$${deb:+:$$deb}" NSNTRACE_VM_UNPREPARED="$$unprep" \
	NSNTRACE_BIN=$(CURDIR)/bin/nsntrace NSNTRACE_VMTEST=1 $(GO) test -count=1 -timeout 30m -v -run '^TestVM$$' ./internal/vmtest

# The tests of the pure packages on 32-bit and big-endian CPUs: each test
# binary is cross-compiled and run, in its package's directory as go test
# would, under Debian's qemu-user-static (named here, so binfmt_misc need
# not be set up). NSNTRACE_EMULATED=GOARCH makes the privileged tests skip
# even under NSNTRACE_REQUIRE_PRIVILEGED=1: they would reach the host's
# kernel through qemu anyway, and the native run above covers them. The
# oracles they run (tcpdump, tshark) start through testbed.Start, which
# there guards against qemu 7.2's fork leaving a child stuck before execve.
# Entries are GOARCH:GOARM:runner. 386 runs without qemu, on the amd64
# kernel's own i386 support: qemu-i386 7.2 (Debian 12) crashes Go's 386
# runtime as soon as it starts a thread; set QEMU_386=qemu-i386-static to
# try a later qemu.
QEMU_386  ?=
CPU_TESTS := arm:7:qemu-arm-static 386::$(QEMU_386) mips::qemu-mips-static arm64::qemu-aarch64-static
CPU_PKGS  := pcapng rawcap rawcap/filter internal/summary internal/bpfvm
test-cpus:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for t in $(CPU_TESTS); do \
		arch=$${t%%:*}; rest=$${t#*:}; arm=$${rest%%:*}; run=$${rest#*:}; \
		start=$$(date +%s); \
		for p in $(CPU_PKGS); do \
			bin=$$tmp/$$arch-$$(echo $$p | tr / -).test; \
			echo "GOARCH=$$arch$${arm:+ GOARM=$$arm} $${run:-(native)} ./$$p"; \
			CGO_ENABLED=0 GOOS=linux GOARCH=$$arch GOARM=$$arm $(GO) test -c -o $$bin ./$$p; \
			(cd $$p && NSNTRACE_EMULATED=$$arch $$run $$bin -test.count=1 -test.timeout=10m) || { echo "FAIL: GOARCH=$$arch ./$$p"; exit 1; }; \
		done; \
		echo "GOARCH=$$arch: $$(( $$(date +%s) - start ))s"; \
	done

bench: build
	$(GO) run ./cmd/nsntrace-bench

install: build docs
	install -D -m 0755 bin/nsntrace $(DESTDIR)$(BINDIR)/nsntrace
	install -D -m 0644 bin/docs/man/nsntrace.1 $(DESTDIR)$(MANDIR)/man1/nsntrace.1
	install -D -m 0644 bin/docs/nsntrace.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/nsntrace
	install -D -m 0644 bin/docs/_nsntrace $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_nsntrace
	install -D -m 0644 bin/docs/nsntrace.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/nsntrace.fish

clean:
	rm -rf bin
