# tako: the two commands a user needs are `make run` and `make test`.
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
ARGS ?=

.PHONY: run test build deps check fuzz

## run: install what is missing, build tako and serve the API (tako server $(ARGS))
run: deps build
	./bin/tako server $(ARGS)

## test: install what is missing and run the whole test suite against real Docker
test: deps check
	$(GO) test -count=1 -timeout 75m ./...
	$(MAKE) --no-print-directory fuzz

build:
	$(GO) build -o bin/tako ./cmd/tako

# debootstrap builds tako's executor image when no registry is reachable.
deps:
	@command -v debootstrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" != 0 ]; then echo "tako needs debootstrap: run 'sudo apt-get install debootstrap'" >&2; exit 1; fi; \
	  echo "==> installing debootstrap"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
	@docker info >/dev/null 2>&1 || { echo "tako needs a running Docker Engine: start it (systemctl start docker) or set DOCKER_HOST" >&2; exit 1; }

check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed" >&2; exit 1; }
	$(GO) vet ./...

fuzz:
	$(GO) test ./api -run='^$$' -fuzz=FuzzExecuteRequest -fuzztime=30s
