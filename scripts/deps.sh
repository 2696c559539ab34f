#!/usr/bin/env bash
# Installs, with apt, the Debian 12 packages pg_pilot needs to build, test and run.
# A no-op (no apt call at all) when every package is already installed.
set -euo pipefail
PKGS=(
  postgresql-15                # the server pg_pilot plugs into
  postgresql-server-dev-15     # PGXS, server headers, pg_regress
  postgresql-15-hypopg         # hypothetical indexes (index advisor; loaded in tests with pg_pilot)
  postgresql-contrib           # pg_stat_statements, loaded together with pg_pilot in tests
  libpq-dev                    # pilotd talks to PostgreSQL (feedback store)
  libboost-dev                 # Boost.Interprocess: the shared-memory segment
  nlohmann-json3-dev           # pilotd's JSON config, the model file's metadata
  libtorch-dev                 # the learned model's network (pilotd's libpilot_mscn.so only)
  libopenblas0-serial          # libtorch's linear layers: ~20x faster than the reference BLAS
  prometheus-cpp-dev           # pilotd's metrics endpoint (Prometheus exposition over HTTP)
  prometheus                   # promtool: make check validates the metrics pilotd serves
  curl                         # make check scrapes the metrics endpoint
  python3-yaml                 # make check reads the shipped sql_exporter collector
  libgtest-dev                 # C++ unit tests
  g++ make python3
)
# `make bench` also drives queries from Python and draws the report's plots
if [ "${1:-}" = "bench" ]; then
  PKGS+=(python3-psycopg2 python3-matplotlib)
fi
# `make deb` builds the Debian package postgresql-15-pg-pilot (debian/)
if [ "${1:-}" = "deb" ]; then
  PKGS+=(
    debhelper                  # dh, dh_installsystemd, dh_installlogrotate (compat 13)
    postgresql-server-dev-all  # Build-Depends: Debian's extension tooling (pg_buildext)
    dpkg-dev                   # dpkg-buildpackage (no fakeroot: Rules-Requires-Root: no)
    logrotate                  # regress/integration/deb_package.sh rotates pilotd's log with the package's file
  )
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
