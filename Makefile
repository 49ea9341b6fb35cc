# meshd — two commands on a fresh machine: `make run` and `make test`.

GO          ?= go
BIN         := bin
MESHD       := $(BIN)/meshd
FUZZTIME    ?= 30s
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(BIN)/staticcheck-$(STATICCHECK_VERSION)
# Every fuzz target, as package:Name, found in the sources.
FUZZ_TARGETS = $(shell for f in $$(grep -rlE '^func Fuzz' --include='*_test.go' .); do \
	for n in $$(grep -oE '^func Fuzz[A-Za-z0-9_]+' $$f | cut -d' ' -f2); do \
	echo "./$$(dirname $${f#./}):$$n"; done; done)

.PHONY: all build run test test-short lint fuzz bench bench-dns bench-cache bench-scale e2e e2e-image clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(MESHD) ./cmd/meshd

# A single in-memory server on 127.0.0.1: HTTP on 8500, DNS on 8600.
run: build
	$(MESHD) agent -dev

# The whole suite under the race detector: unit tests, in-process agents and
# clusters, the consul/api compatibility tests, and every fuzz target's seed
# corpus.
test:
	$(GO) test -race -count=1 -timeout 15m ./...

# The quick loop: skips the slow restart and cluster tests.
test-short:
	$(GO) test -race -count=1 -short ./...

$(STATICCHECK):
	mkdir -p $(BIN)
	GOBIN=$(abspath $(BIN)) GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(BIN)/staticcheck $(STATICCHECK)

lint: $(STATICCHECK)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(GO) vet -tags e2e ./scripts/e2e/
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags e2e ./scripts/e2e/

# Runs every fuzz target for FUZZTIME each (default 30s).
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s $$pkg; \
	done

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

# Loads one agent with 10,000 services / 100,000 instances and drives its
# DNS port with dnsperf (installed from Debian when missing). Loopback only.
bench-dns: build
	$(GO) run ./scripts/bench-dns -meshd $(BIN)/meshd

# Runs 3 servers and 8 client agents on loopback, each watching 1,000
# services: cached and uncached lookup latency, and the queries the
# servers see idle (6 m) and under churn.
bench-cache: build
	$(GO) run ./scripts/bench-cache -meshd $(BIN)/meshd

# The mission's size on one machine: 3 servers and client agents on
# loopback, 100,000 instances of 10,000 services, 10,000 heartbeats/s,
# lookups cached and uncached, 10,000 watchers, snapshot and restart, and
# 100 more agents for gossip failure detection. Under 10 minutes on 2
# cores; BENCH_FLAGS passes flags (e.g. -profile-dir prof).
bench-scale: build
	$(GO) run ./scripts/bench-scale -meshd $(BIN)/meshd $(BENCH_FLAGS)

# The image the e2e compose files run: FROM scratch, the static binary and
# busybox-static (from Debian). Then: docker compose -f scripts/e2e/compose.yml up
e2e-image:
	GO=$(GO) scripts/e2e/build-image.sh

# End-to-end fault tests: the real binary as hosts in Docker containers,
# faults injected with the Docker engine (kill, network disconnect,
# restart); figures go to scripts/e2e/RESULTS.md. Needs a Docker engine.
e2e: e2e-image
	@docker info >/dev/null 2>&1 || { echo "make e2e: no Docker engine answers 'docker info'" >&2; exit 1; }
	E2E_SKIP_BUILD=1 $(GO) test -tags e2e -count=1 -v -timeout 40m $(E2E_FLAGS) ./scripts/e2e/

clean:
	rm -rf $(BIN)
