# Switchboard - a SIP registrar and proxy in C.
#
#   make run     install what is missing, build, and start the server with the
#                sample configuration on 127.0.0.1:5060 with demo users
#   make test    install what is missing and run every test: unit and
#                integration tests, then all again under AddressSanitizer and
#                UndefinedBehaviorSanitizer, then the fuzzers for a short time
#   make bench   the benchmark against Kamailio (never part of make test)
#
# Both work on a fresh Debian 12 machine as root (or with sudo).

BUILD       ?= build
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
JOBS        ?= $(shell nproc)
FUZZ_SECS   ?= 30

.PHONY: all deps build run test test-release test-asan fuzz bench clean format

all: build

deps:
	@scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	scripts/run-demo.sh

test: deps
	$(MAKE) test-release
	$(MAKE) test-asan
	$(MAKE) fuzz

test-release:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure

test-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSB_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure

fuzz:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSB_FUZZ=ON >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_sip_parse fuzz_auth_cred fuzz_config fuzz_settings fuzz_pidf fuzz_dptext fuzz_tcp_stream fuzz_branch fuzz_flood fuzz_dialog fuzz_sdp fuzz_cdr fuzz_dtmf
	fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECS)

bench:
	@scripts/install-deps.sh bench
	$(MAKE) build
	bench/run.sh

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'fuzz/*.c')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
