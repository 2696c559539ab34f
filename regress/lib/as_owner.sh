# as_owner.sh — PostgreSQL refuses to run as root.  The check, demo and bench
# drivers call pp_rerun_as_owner first: as root it copies the repository's
# regress/, demo/ and monitoring/ (and ../shared/data and tools when present) to a scratch directory
# owned by the database OS user (PG_PILOT_TEST_USER, default postgres), runs the
# same script there as that user, and exits with its status.  Not root: it
# returns at once and the caller runs in place.
#
#   pp_rerun_as_owner NAME SCRIPT [VAR=value ...]
#     NAME    names the scratch directory /tmp/pg_pilot_NAME.XXXXXX
#     SCRIPT  the driver, relative to the repository root
#     VAR=... extra environment for the child
# The child gets PP_WORK (the scratch directory) and PP_SHARED (the copied
# shared/ directory, or empty).  If the caller defines pp_after_rerun, it runs
# as root after the child, with the scratch directory and the exit status.
# The scratch directory is removed on success unless PG_PILOT_KEEP is set.
#
# The checkout, and files named on the command line, may be where the database
# OS user cannot go (a clone under /root, mode 0700).  So the child starts in
# the scratch directory (a psql started elsewhere says "could not change
# directory" on stderr), and a driver may name, before the call:
#   PP_RERUN_OUT=DIR        the child gets OUT=SCRATCH/out; afterwards (also on
#                           failure) its content is copied into DIR
#   PP_RERUN_INPUTS="V ..." variables holding paths of input files: each file's
#                           folder is copied into the scratch directory and the
#                           child gets V=the copy (a SQL file runs from its own
#                           folder, which holds its data)

pp_rerun_as_owner() {
  [ "$(id -u)" -eq 0 ] || return 0
  local name=$1 script=$2
  shift 2
  local root user work shared="" rc v src dir n=0 staged=()
  local -A copy_of=()
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  user=${PG_PILOT_TEST_USER:-postgres}
  work=$(mktemp -d "/tmp/pg_pilot_$name.XXXXXX")
  cp -r "$root/regress" "$work/regress"
  if [ -d "$root/demo" ]; then cp -r "$root/demo" "$work/demo" && rm -rf "$work/demo/out"; fi
  if [ -d "$root/monitoring" ]; then cp -r "$root/monitoring" "$work/monitoring"; fi
  if [ -d "$root/../shared/data" ]; then
    mkdir -p "$work/shared" && cp -r "$root/../shared/data" "$work/shared/" && shared="$work/shared"
    if [ -d "$root/../shared/tools" ]; then cp -r "$root/../shared/tools" "$work/shared/"; fi
  fi
  for v in ${PP_RERUN_INPUTS:-}; do
    src=${!v:-}
    [ -n "$src" ] || continue
    dir=$(cd "$(dirname "$src")" && pwd) || { echo "$v=$src: no such folder" >&2; exit 2; }
    if [ -z "${copy_of[$dir]:-}" ]; then
      n=$((n + 1)); copy_of[$dir]="$work/input$n"
      cp -r "$dir" "${copy_of[$dir]}" || { echo "cannot copy $dir to $work" >&2; exit 1; }
    fi
    staged+=("$v=${copy_of[$dir]}/$(basename "$src")")
  done
  if [ -n "${PP_RERUN_OUT:-}" ]; then mkdir -p "$work/out"; staged+=("OUT=$work/out"); fi
  chown -R "$user" "$work"
  # the staged paths come last: env lets a later assignment win
  (cd "$work" && runuser -u "$user" -- env PATH="$PATH" PP_WORK="$work" PP_SHARED="$shared" "$@" "${staged[@]}" \
     bash "$work/$script")
  rc=$?
  if [ -n "${PP_RERUN_OUT:-}" ]; then
    mkdir -p "$PP_RERUN_OUT" && cp -r "$work/out/." "$PP_RERUN_OUT/" \
      || echo "could not copy the results from $work/out to $PP_RERUN_OUT" >&2
  fi
  if declare -F pp_after_rerun >/dev/null; then pp_after_rerun "$work" "$rc"; fi
  if [ $rc -eq 0 ] && [ -z "${PG_PILOT_KEEP:-}" ]; then rm -rf "$work"; else echo "(scratch directory kept: $work)"; fi
  exit $rc
}
