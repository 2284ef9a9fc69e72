# nsntrace build, test and benchmark entry points.
GO       ?= go
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)

.PHONY: all build cross test vet bench install clean

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

vet:
	test -z "$$(gofmt -l .)" || { gofmt -l .; echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build ./...
	# 32-bit and big-endian: code and tests must at least build there.
	CGO_ENABLED=0 GOARCH=mips $(GO) vet ./...

# The whole suite. Privileged tests need root; with NSNTRACE_REQUIRE_PRIVILEGED=1
# (set by .ci/run) a test that would skip for lack of privileges fails instead.
test: vet build
	NSNTRACE_BIN=$(CURDIR)/bin/nsntrace $(GO) test -count=1 -timeout 20m ./...

bench: build
	$(GO) run ./cmd/nsntrace-bench

install: build
	install -D -m 0755 bin/nsntrace $(DESTDIR)$(BINDIR)/nsntrace
	./bin/nsntrace --gen-docs $(CURDIR)/bin/docs
	install -D -m 0644 bin/docs/man/nsntrace.1 $(DESTDIR)$(MANDIR)/man1/nsntrace.1
	install -D -m 0644 bin/docs/nsntrace.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/nsntrace
	install -D -m 0644 bin/docs/_nsntrace $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_nsntrace
	install -D -m 0644 bin/docs/nsntrace.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/nsntrace.fish

clean:
	rm -rf bin
