# svcnat — see README.md. `make demo` and `make test` are the two commands a
# newcomer needs; both install what they lack on a Debian host (as root).

GO       ?= go
BIN      := bin/svcnat
PKGS     := ./...
FUZZTIME ?= 60s
N        ?= 10000
E        ?= 5

.PHONY: all build test unit integration demo fuzz bench vet fmt deps clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/svcnat

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
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz FuzzParseSave -fuzztime $(FUZZTIME) ./rules/

# bench runs the Go benchmarks, then (as root) svcnat-bench: N services x E
# endpoints applied into fresh namespaces on both backends, one table out
# (docs/PERFORMANCE.md).
bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./integration/cmd/svcnat-bench -svcnat $(BIN) -n $(N) -e $(E)

clean:
	rm -rf bin
