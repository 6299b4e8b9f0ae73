# svcnat — see README.md. `make demo` and `make test` are the two commands a
# newcomer needs; both install what they lack on a Debian host (as root).

GO       ?= go
BIN      := bin/svcnat
# The version svcnat --version reports: the tag or commit of the checkout.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -X github.com/svcnat/svcnat/internal/buildinfo.version=$(VERSION)
PREFIX   ?= /usr/local
DESTDIR  ?=
PKGS     := ./...
FUZZTIME ?= 60s
N        ?= 10000
E        ?= 5

.PHONY: all build test unit integration demo fuzz bench vet fmt deps clean man package install

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/svcnat

# man writes svcnat(8), generated from the command definitions like --help.
man: build
	$(BIN) man > bin/svcnat.8

# package builds dist/svcnat_*.deb and dist/svcnat-*.rpm with nfpm, run as a
# Go tool (go tool nfpm): no system packaging tools needed.
package:
	VERSION=$(VERSION) GO=$(GO) bash scripts/package.sh

# install puts the binary, the man page and the completions under PREFIX.
install: man
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/svcnat
	install -D -m 0644 bin/svcnat.8 $(DESTDIR)$(PREFIX)/share/man/man8/svcnat.8
	$(BIN) completion bash | install -D -m 0644 /dev/stdin $(DESTDIR)$(PREFIX)/share/bash-completion/completions/svcnat
	$(BIN) completion zsh | install -D -m 0644 /dev/stdin $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_svcnat
	$(BIN) completion fish | install -D -m 0644 /dev/stdin $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/svcnat.fish

# deps installs the kernel tools tests and the demo drive (Debian, root).
deps:
	@bash scripts/deps.sh

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }

# test runs unit tests, the fuzz seed corpora, and the real-kernel tests
# (those build their own network namespaces and skip when not root).
test: deps vet build
	$(GO) test -count=1 -timeout 40m $(PKGS)

unit:
	$(GO) test -count=1 -short $(PKGS)

demo: deps build
	@bash scripts/demo.sh

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./internal/config/
	$(GO) test -run '^$$' -fuzz FuzzParseSave -fuzztime $(FUZZTIME) ./internal/kernel/iptables/rules/

# bench runs the Go benchmarks, then (as root) svcnat-bench: N services x E
# endpoints applied into fresh namespaces on each backend (iptables-nft,
# iptables-legacy, nftables), one table out
# (docs/PERFORMANCE.md). The Go benchmarks that generate a configuration
# take the same N and E (internal/bench.FromEnv) and report them on their
# lines.
bench: deps build
	SVCNAT_BENCH_N=$(N) SVCNAT_BENCH_E=$(E) $(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./integration/cmd/svcnat-bench -svcnat $(BIN) -n $(N) -e $(E)

clean:
	rm -rf bin dist
