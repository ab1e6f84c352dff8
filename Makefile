# jupyterhub-go — see README.md.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN     := bin/jupyterhub-go
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build test unit integration integration-nspawn lint run demo clean

all: build

build: $(BIN)

$(BIN): $(shell find . -name '*.go' -not -path './bin/*') go.mod go.sum agent/templates/* agent/static/*
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/jupyterhub-go

# The one test command: unit tests here, then the integration suite in a throw-away VM.
test: lint unit integration

unit:
	$(GO) test -count=1 ./...

# Real systemd, PAM and jupyterhub-singleuser in a Debian VM (qemu; the image is built and cached
# on first use). JHGO_BACKEND=nspawn is the quick loop (no cgroup enforcement).
integration:
	test/integration.sh

integration-nspawn:
	JHGO_BACKEND=nspawn test/integration.sh

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt needed: $$fmt"; exit 1; fi
	$(GO) vet ./...

# Run the hub on this (systemd) host as root with the built-in defaults: 127.0.0.1:8000, PAM login.
run: build
	@test -f /etc/pam.d/jupyterhub-go || install -m 0644 packaging/pam.d/jupyterhub-go /etc/pam.d/jupyterhub-go
	$(BIN) serve

# Try it anywhere: boots the test VM with a demo user and forwards its hub to 127.0.0.1:8000.
demo: build
	test/vmtest/vmtest.sh demo $(BIN)

clean:
	rm -rf bin
