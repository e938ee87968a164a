# Switchyard: the two commands of the README's quick start are `make demo` and `make test`.
SWIFT ?= swift

.PHONY: demo console bootstrap build release test test-swift test-conformance test-console test-durability test-fleet test-deploy test-soak test-fuzz bench bench-semantic-quality clean

## Install what the build needs, build, and start the gateway on the demo configuration (simulated
## providers, tenants with budgets, a cache, a flaky provider) with synthetic traffic.
demo: bootstrap
	$(SWIFT) build --product switchyard
	./.build/debug/switchyard serve --demo

## Attach the live console to the gateway `make demo` runs (in another terminal).
console:
	$(SWIFT) build --product switchyard-console
	./.build/debug/switchyard-console

## Install what the build needs, then run every test: Swift unit/integration tests, the SDK
## conformance suite, the console's end-to-end test in tmux, the ledger's durability test, the fleet
## test (three replicas behind HAProxy sharing state through Redis), a short soak (mixed load, faults and hang-ups; the gateway must answer everything and stay up) and a
## bounded fuzzing run.
test: bootstrap test-swift test-conformance test-console test-durability test-fleet test-deploy test-soak test-fuzz

bootstrap:
	@bash scripts/bootstrap

build:
	$(SWIFT) build

release:
	$(SWIFT) build -c release --product switchyard

test-swift:
	$(SWIFT) build --build-tests
	$(SWIFT) test

test-conformance:
	$(SWIFT) build --product switchyard
	bash Tests/Conformance/run.sh

test-console:
	$(SWIFT) build
	bash Tests/Console/e2e.sh

test-durability:
	$(SWIFT) build --product switchyard
	bash Tests/Durability/ledger.sh

test-fleet:
	$(SWIFT) build --product switchyard
	$(SWIFT) build --product switchyard-console
	bash Tests/Fleet/run.sh
	bash Tests/Fleet/database.sh

test-deploy:
	$(SWIFT) build --product switchyard
	bash Tests/Deploy/run.sh

test-soak:
	CONFIGURATION=debug DURATION=20 WORKERS=16 bash Benchmarks/soak/run.sh

## Every fuzz target for 3 s (a minute or so in all) from the committed corpora, in a debug build
## (quicker to build, bounds-checked): docs/security.md.
test-fuzz:
	FUZZ_CONFIGURATION=debug bash Fuzz/run.sh 3

## The overhead benchmark (not a test): see docs/performance.md.
bench: release
	bash Benchmarks/run.sh

## The semantic cache's precision and recall with a real embedding model (docs/caching.md).
bench-semantic-quality: release
	bash Benchmarks/semantic-quality/run.sh

clean:
	rm -rf .build
