# tako: the two commands a user needs are `make run` and `make test`.
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
ARGS ?=
# gVisor's runsc, built once per version (tako gvisor -h); the tests find it
# through GVISOR_RUNSC.
GVISOR_VERSION ?= v0.0.0-20260905035102-160fafc42237
GVISOR_RUNSC ?= $(HOME)/.cache/tako/runsc-$(GVISOR_VERSION)/runsc
export GVISOR_RUNSC

.PHONY: run test build image stack deps testdeps testdb gvisor check fuzz

## run: install what is missing, build tako and serve the API (tako server $(ARGS))
run: deps build
	./bin/tako server $(ARGS)

## test: install what is missing and run the whole test suite against real Docker and PostgreSQL
test: deps testdeps testbrowser testdb gvisor check
	$(GO) test -count=1 -timeout 75m ./...
	$(MAKE) --no-print-directory fuzz

build:
	$(GO) build -o bin/tako ./cmd/tako

# image builds the tako-server image from scratch with a static binary;
# no registry is needed (see deploy/Dockerfile for CI pipelines).
image: build
	CGO_ENABLED=0 $(GO) build -o bin/tako-static ./cmd/tako
	./bin/tako image --binary bin/tako-static

# The images deploy/compose.yaml runs: tako-server, tako-postgres, tako-lb
# and tako-prometheus, all tagged with tako's version.
stack: build
	CGO_ENABLED=0 $(GO) build -o bin/tako-static ./cmd/tako
	./bin/tako image --binary bin/tako-static --stack

# debootstrap builds tako's executor image when no registry is reachable.
deps:
	@command -v debootstrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" != 0 ]; then echo "tako needs debootstrap: run 'sudo apt-get install debootstrap'" >&2; exit 1; fi; \
	  echo "==> installing debootstrap"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
	@docker info >/dev/null 2>&1 || { echo "tako needs a running Docker Engine: start it (systemctl start docker) or set DOCKER_HOST" >&2; exit 1; }

# Strict mode runs jobs under gVisor. runsc must be built as pure Go (the cgo
# build fails here) and is registered as two Docker runtimes: runsc, with the
# --host-fifo=open tako's FIFO transport needs, and tako-test-runsc-nofifo,
# deliberately without it, which the tests use to prove tako survives a
# runtime that fails its probe. Registering merges into daemon.json and sends
# dockerd SIGHUP, no restart; when nothing changed it does nothing. Without
# root it only checks that Docker already has both.
gvisor: deps build
	@if [ "$$(id -u)" != 0 ]; then \
	  [ -n "$$(docker info --format '{{(index .Runtimes "runsc").Path}}' 2>/dev/null)" ] && \
	  [ -n "$$(docker info --format '{{(index .Runtimes "tako-test-runsc-nofifo").Path}}' 2>/dev/null)" ] || { \
	    echo "the tests need gVisor registered with Docker, which needs root: run 'sudo make gvisor' once" >&2; exit 1; }; \
	else \
	  test -x "$(GVISOR_RUNSC)" || { \
	    echo "==> building gVisor runsc $(GVISOR_VERSION) (about 2 minutes, once)"; \
	    CGO_ENABLED=0 GOBIN="$(dir $(GVISOR_RUNSC))" $(GO) install gvisor.dev/gvisor/runsc@$(GVISOR_VERSION) || exit 1; }; \
	  ./bin/tako gvisor register --path "$(GVISOR_RUNSC)" --name runsc --arg=--host-fifo=open && \
	  ./bin/tako gvisor register --path "$(GVISOR_RUNSC)" --name tako-test-runsc-nofifo --no-args; \
	fi

# The metrics tests run a real Prometheus server and promtool (Debian's
# prometheus package) against tako and the files in deploy/prometheus.
# The compatibility tests run a replica of Tako VM's Python SDK with python3.
# The Python client's test (clients/) builds its wheel offline and installs it
# into a fresh venv: Debian's python3 with venv, pip, setuptools and wheel.
testdeps:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" != 0 ]; then echo "the tests need Prometheus: run 'sudo apt-get install prometheus'" >&2; exit 1; fi; \
	  echo "==> installing prometheus"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@command -v python3 >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" != 0 ]; then echo "the tests need python3 (the Tako VM SDK replica): run 'sudo apt-get install python3'" >&2; exit 1; fi; \
	  echo "==> installing python3"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null; }
	@/usr/bin/python3 -c 'import setuptools, wheel, venv, ensurepip' >/dev/null 2>&1 && /usr/bin/python3 -m pip --version >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" != 0 ]; then echo "the tests need python3 with venv, pip, setuptools and wheel (the Python client's wheel): run 'sudo apt-get install python3-venv python3-pip python3-setuptools python3-wheel'" >&2; exit 1; fi; \
	  echo "==> installing python3-venv python3-pip python3-setuptools python3-wheel"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv python3-pip python3-setuptools python3-wheel >/dev/null; }

# The tests create their databases on a local PostgreSQL (TAKO_TEST_DATABASE_URL,
# default postgres://postgres:postgres@127.0.0.1:5432/postgres): start the
# host's cluster, installing it first if needed, and give postgres a password.
testdb:
	@if [ -z "$$TAKO_TEST_DATABASE_URL" ]; then \
	  if ! command -v pg_lsclusters >/dev/null 2>&1; then \
	    echo "==> installing PostgreSQL"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi; \
	  cluster=$$(pg_lsclusters --no-header | awk 'NR==1 {print $$1" "$$2}'); \
	  [ -n "$$cluster" ] || { echo "no PostgreSQL cluster found (pg_lsclusters)" >&2; exit 1; }; \
	  pg_ctlcluster $$cluster start 2>/dev/null || true; \
	  for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	  pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }; \
	  su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null; \
	fi

# The console's browser tests (cmd/tako/console_test.go) drive Debian's
# headless Chromium.
.PHONY: testbrowser
testbrowser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" != 0 ]; then echo "the console tests need Chromium: run 'sudo apt-get install chromium'" >&2; exit 1; fi; \
	  echo "==> installing chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed" >&2; exit 1; }
	$(GO) vet ./...

# Each fuzz target runs briefly on every CI run, from its committed seed
# corpus (testdata/fuzz) and the inputs earlier runs found. The budgets are
# counts of executions, never durations: with -fuzztime=<duration> Go 1.26's
# coordinator can report its own deadline as a failure ("context deadline
# exceeded", go.dev/issue/75804) when a worker is busy as time runs out, for
# instance minimizing a new input on a loaded machine. A count has no
# deadline, so load only makes a run slower; a crasher still fails it. The
# counts take 10-20 s each on the 2-core CI machine when it is idle.
FUZZ = $(GO) test -run='^$$' -fuzzminimizetime=200x
fuzz:
	$(FUZZ) ./api -fuzz='^FuzzExecuteRequest$$' -fuzztime=100000x
	$(FUZZ) ./api -fuzz='^FuzzArtifactName$$' -fuzztime=120000x
	$(FUZZ) ./runner -fuzz='^FuzzCollectArtifactName$$' -fuzztime=120000x
	$(FUZZ) ./jobtypes -fuzz='^FuzzValidateRequirement$$' -fuzztime=500000x
	$(FUZZ) ./config -fuzz='^FuzzLoad$$' -fuzztime=30000x
