# Switchyard: the two commands of the README's quick start are `make demo` and `make test`.
SWIFT ?= swift

.PHONY: demo bootstrap build release test test-swift test-conformance bench clean

## Install what the build needs, build, and start the gateway on the zero-key default.
demo: bootstrap
	$(SWIFT) build --product switchyard
	./.build/debug/switchyard serve

## Install what the build needs, then run every test: Swift unit/integration tests and the SDK conformance suite.
test: bootstrap test-swift test-conformance

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

## The overhead benchmark (not a test): see docs/performance.md.
bench: release
	bash Benchmarks/run.sh

clean:
	rm -rf .build
