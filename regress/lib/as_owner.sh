# as_owner.sh — PostgreSQL refuses to run as root.  The check, demo and bench
# drivers call pp_rerun_as_owner first: as root it copies the repository's
# regress/ and demo/ (and ../shared/data when present) to a scratch directory
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

pp_rerun_as_owner() {
  [ "$(id -u)" -eq 0 ] || return 0
  local name=$1 script=$2
  shift 2
  local root user work shared="" rc
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  user=${PG_PILOT_TEST_USER:-postgres}
  work=$(mktemp -d "/tmp/pg_pilot_$name.XXXXXX")
  cp -r "$root/regress" "$work/regress"
  if [ -d "$root/demo" ]; then cp -r "$root/demo" "$work/demo" && rm -rf "$work/demo/out"; fi
  if [ -d "$root/../shared/data" ]; then
    mkdir -p "$work/shared" && cp -r "$root/../shared/data" "$work/shared/" && shared="$work/shared"
  fi
  chown -R "$user" "$work"
  runuser -u "$user" -- env PATH="$PATH" PP_WORK="$work" PP_SHARED="$shared" "$@" bash "$work/$script"
  rc=$?
  if declare -F pp_after_rerun >/dev/null; then pp_after_rerun "$work" "$rc"; fi
  if [ $rc -eq 0 ] && [ -z "${PG_PILOT_KEEP:-}" ]; then rm -rf "$work"; else echo "(scratch directory kept: $work)"; fi
  exit $rc
}
