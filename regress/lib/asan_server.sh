# asan_server.sh — run the server with a sanitized pg_pilot.so, for
# `make check-asan`, without touching the system's PostgreSQL installation.
#
#   pp_asan_server ROOT SANITIZED_SO
#
# PostgreSQL finds its library and share directories relative to the
# executable it runs from (a relocatable installation).  ROOT gets a shadow of
# the installation: copies of postgres, pg_ctl and initdb (they resolve
# symlinks to find themselves), symbolic links for everything else, and
# SANITIZED_SO in place of $libdir/pg_pilot.so.  Exports PG_BIN (cluster.sh
# then starts that server) and PP_SERVER_PRELOAD: pg_ctl starts the server with
# libasan preloaded, which an ASan-instrumented module loaded into an
# uninstrumented program needs (and lib/asan_first.c, built here, after it).  Reports go where ASAN_OPTIONS' log_path says;
# leak detection is off for the server, whose processes exit without freeing
# their memory contexts by design.

pp_asan_server() {
  local root=$1 so=$2 bindir sharedir pkglibdir libasan f
  bindir=$(pg_config --bindir); sharedir=$(pg_config --sharedir); pkglibdir=$(pg_config --pkglibdir)
  libasan=$(g++ -print-file-name=libasan.so)
  [ -f "$so" ] && [ -e "$libasan" ] || { echo "pp_asan_server: $so or libasan missing" >&2; return 1; }
  rm -rf "$root"
  mkdir -p "$root$bindir" "$root$pkglibdir" "$root$sharedir/extension"
  for f in "$bindir"/*; do
    case $(basename "$f") in
      postgres|pg_ctl|initdb) cp -p "$f" "$root$f" ;;
      *) ln -s "$f" "$root$f" ;;
    esac
  done
  for f in "$pkglibdir"/*; do [ "$(basename "$f")" = pg_pilot.so ] || ln -s "$f" "$root$f"; done
  cp "$so" "$root$pkglibdir/pg_pilot.so"
  for f in "$sharedir"/*; do [ "$(basename "$f")" = extension ] || ln -s "$f" "$root$f"; done
  for f in "$sharedir"/extension/*; do ln -s "$f" "$root$f"; done
  gcc -shared -fPIC -O1 -o "$root/asan_first.so" "$(dirname "${BASH_SOURCE[0]}")/asan_first.c" -ldl || return 1
  export PG_BIN="$root$bindir"
  export PP_SERVER_PRELOAD="$libasan $root/asan_first.so" PP_ASAN_SO="$root$pkglibdir/pg_pilot.so"
}

# pp_asan_server_loaded PID: the process has the sanitized module mapped (the
# relocation worked and nothing loaded the system's pg_pilot.so instead).
pp_asan_server_loaded() {
  grep -q " $PP_ASAN_SO\$" "/proc/$1/maps" && ! grep -q " $(pg_config --pkglibdir)/pg_pilot.so\$" "/proc/$1/maps"
}
