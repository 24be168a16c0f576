# dittonode — make help lists the targets.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
BIN       := bin
PKGS      := ./...
FUZZTIME  ?= 30s
SHORTFUZZ ?= 3s
BENCHTIME ?= 1s
CHAOS     ?= 5m
CHAOSSEED ?= 7

.PHONY: help build run test test-short test-testnet testnet chaos fuzz fuzz-short bench bench-http bench-mesh bench-mqtt compat lint fmt verify clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/dittonode, bin/dittoload and bin/mqttload
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/dittonode ./cmd/dittonode
	$(GO) build -o $(BIN)/dittoload ./cmd/dittoload
	$(GO) build -o $(BIN)/mqttload ./cmd/mqttload

run: build ## run a development node: data in ./data, HTTP on 127.0.0.1:8080, MQTT on 127.0.0.1:1883, user and device ditto/ditto
	$(BIN)/dittonode run --dev --data ./data --http 127.0.0.1:8080 --mqtt $(or $(MQTT),127.0.0.1:1883)

test: ## all tests with -race, then a short run of every fuzz target
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(MAKE) --no-print-directory fuzz-short

test-short: ## quick tests without -race and without the multi-node/slow ones
	$(GO) test -short -count=1 $(PKGS)

testnet: build ## run a local 3-node cluster in the foreground (Ctrl-C stops it)
	@scripts/testnet.sh $(BIN)/dittonode

test-testnet: ## multi-node testnet tests: harness faults and a short seeded linearizability run
	$(GO) test -race -count=1 -timeout 15m ./testnet/

chaos: ## long linearizability run of testnet under faults (CHAOS=5m, CHAOSSEED=7)
	$(GO) test -race -count=1 -timeout 2h -v -run '^TestChaos$$' ./testnet -chaos.duration=$(CHAOS) -chaos.seed=$(CHAOSSEED)

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@scripts/fuzz.sh $(FUZZTIME)

fuzz-short: ## run every fuzz target briefly (SHORTFUZZ each, default 3s)
	@scripts/fuzz.sh $(SHORTFUZZ)

bench: ## Go benchmarks of every package
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

bench-http: build ## HTTP load benchmarks of a real node (see docs/BENCHMARKS.md)
	@scripts/bench-http.sh

bench-mesh: build ## 3-node cluster vs 3-member etcd in one run (THINGS=10000 DURATION=20s)
	@scripts/bench-mesh.sh $(or $(THINGS),10000) $(or $(DURATION),20s)

bench-mqtt: build ## MQTT: embedded broker vs mosquitto, twin modifies, idle connections (DURATION=10s)
	@scripts/bench-mqtt.sh $(or $(DURATION),10s)

compat: ## Eclipse Ditto JavaScript client compatibility checks (needs npm)
	@scripts/compat-ditto-js.sh

lint: ## go vet and gofmt
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

verify: lint ## lint plus go.mod tidiness
	$(GO) mod tidy -diff

clean: ## remove build output (not ./data)
	rm -rf $(BIN)
