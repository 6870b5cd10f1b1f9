# make test is the one command CI runs (through .ci/run). It installs what
# the tests need on a fresh machine, then runs every check.

GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
# staticcheck 2026.2.2 is module version v0.8.2.
STATICCHECK_VERSION := v0.8.2
PEERS       := testdata/peers

.PHONY: test deps chromium fonts kamailio check fmt vet staticcheck gotest bench build

test: deps check gotest

check: fmt vet staticcheck

build:
	$(GO) build ./...

deps: $(STATICCHECK) $(PEERS)/node_modules/.installed chromium fonts kamailio
	$(GO) mod download

# The customer and auditor pages are tested in headless Chromium.
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# The customer page is Chinese by default: its screenshots need a CJK font.
fonts:
	dpkg -s fonts-noto-cjk >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk >/dev/null)

# The call gate is tested behind Kamailio, a PBX's outbound proxy.
kamailio:
	command -v kamailio >/dev/null || test -x /usr/sbin/kamailio || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kamailio >/dev/null)

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(PEERS)/node_modules/.installed: $(PEERS)/package.json $(PEERS)/package-lock.json
	command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm)
	cd $(PEERS) && npm ci --no-audit --no-fund --silent
	touch $@

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

gotest:
	HEED_PEERS=$(CURDIR)/$(PEERS) $(GO) test -race -timeout 20m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...
