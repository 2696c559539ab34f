# pg_pilot — one Makefile drives everything.  The two commands:
#   make demo    build, start a throw-away cluster + pilotd, train the model: native vs learned vs true counts
#   make check   build and run every test (unit, pg_regress, fault) on a private cluster
# Both first run `make deps` (apt; a no-op when everything is installed).

PG_CONFIG ?= pg_config
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build install check check-asan demo bench bench-advisor deb clean

all: build

deps:
	@scripts/deps.sh

build: deps
	$(MAKE) -j$(JOBS) -C daemon
	$(MAKE) -j$(JOBS) -C extension PG_CONFIG=$(PG_CONFIG)
	$(MAKE) -j$(JOBS) -C regress/unit

# Installs the extension into the PostgreSQL 15 server (PGXS) and pilotd into
# $(PREFIX)/bin (default /usr/local/bin); needs write access there (root).
install: build
	$(MAKE) -C extension install PG_CONFIG=$(PG_CONFIG)
	$(MAKE) -C daemon install

# (as root it also builds and installs the Debian package: its build tools first)
check: install
	@[ "$$(id -u)" -ne 0 ] || scripts/deps.sh deb
	@regress/run_checks.sh

# The same suite with both sides built with AddressSanitizer and
# UndefinedBehaviorSanitizer: pilotd and the unit tests (and the shared C++ code
# in common/ and models/ they contain), and the extension, which the server
# runs from a shadow installation with libasan preloaded
# (regress/lib/asan_server.sh).  Any sanitizer report fails it.
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_EXT := extension/build-asan
check-asan: install
	$(MAKE) -j$(JOBS) -C regress/unit SANITIZE="$(ASAN_FLAGS)" BUILD=$(CURDIR)/regress/unit/build-asan \
		DAEMON_BUILD=$(CURDIR)/daemon/build-asan
	mkdir -p $(ASAN_EXT)/extension $(ASAN_EXT)/common
	cp -p -u extension/*.cpp extension/*.h extension/Makefile extension/pg_pilot.control $(ASAN_EXT)/extension/
	cp -p -u common/*.cpp common/*.h $(ASAN_EXT)/common/
	$(MAKE) -j$(JOBS) -C $(ASAN_EXT)/extension PG_CONFIG=$(PG_CONFIG) SANITIZE="$(ASAN_FLAGS)"
	cp daemon/build-asan/pilotd daemon/build/libpilot_mscn.so $(ASAN_EXT)/extension/pg_pilot.so regress/unit/build-asan/
	@PP_ASAN=1 regress/run_checks.sh

demo: install
	@demo/run_demo.sh

# The benchmarks' settings (see regress/bench/run_bench.sh and
# regress/bench/advisor_bench.sh).  DATA is also a PGXS variable: none of them
# may reach the sub-makes of the build.
BENCH_VARS := DATA TRAIN TEST HOLDOUT OUT SCALE REPS WL_REPS FB_REPS TIMEOUT CLIENTS MAX_SUBPLANS GUARD_ROUNDS GUARD_REPS GUARD_CONTROL \
              QUICK TRAIN_QUERIES SUBPLAN_QUERIES TEST_QUERIES BENCH_SECONDS TRAIN_SECONDS TRAIN_EPOCHS TRAIN_SEED \
              ADVISOR BUDGET_MB MAX_INDEXES ADV_QUERIES ADV_REPS ADV_SEED ADV_SELECTIVE SOAK_SECONDS
MAKEOVERRIDES := $(filter-out $(addsuffix =%,$(BENCH_VARS)),$(MAKEOVERRIDES))

bench: install
	@scripts/deps.sh bench
	@$(foreach v,$(BENCH_VARS),$(v)="$($(v))") regress/bench/run_bench.sh

# The index advisor alone: total workload time with no secondary index vs after
# `pilotd advise --apply`, learned vs plain what-if (`make bench` runs it too).
bench-advisor: install
	@scripts/deps.sh bench
	@$(foreach v,$(BENCH_VARS),$(v)="$($(v))") regress/bench/advisor_bench.sh

# The Debian package postgresql-15-pg-pilot (debian/): extension, pilotd, docs,
# the per-cluster unit pilotd@15-main.service and logrotate, built with
# dpkg-buildpackage in build/deb/src (kept: the next build is incremental);
# the .deb lands in build/deb/.  Install: apt install ./build/deb/postgresql-15-pg-pilot_*.deb
deb:
	@scripts/deps.sh deb
	@JOBS=$(JOBS) scripts/build_deb.sh

clean:
	$(MAKE) -C daemon clean
	$(MAKE) -C extension clean PG_CONFIG=$(PG_CONFIG)
	$(MAKE) -C regress/unit clean
	rm -f common/*.o
	rm -rf $(ASAN_EXT)
