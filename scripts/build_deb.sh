#!/usr/bin/env bash
# build_deb.sh — `make deb`: builds the Debian package postgresql-15-pg-pilot
# (debian/) with dpkg-buildpackage, and leaves it in build/deb/ (not in the
# checkout's parent directory, where dpkg-buildpackage puts it by default).
#
# The build runs in build/deb/src, a fresh copy of the checkout's files (git's
# tracked and new, unignored files; cp -a keeps their times) into which the
# previous package build's objects are moved: make then recompiles only what
# changed since (libtorch code compiles slowly), and debhelper's stamps never
# survive from one build to the next.  Objects are not taken from the
# checkout's own build: the package is compiled with Debian's hardening flags.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/deb
src=$out/src
new=$out/src.new
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

rm -rf "$new"
mkdir -p "$new"
cd "$root"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # files deleted but not yet committed are listed too: skipped
  git ls-files -z --cached --others --exclude-standard -- . ':!build' |
    while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
    xargs -0 -r cp -a --parents -t "$new"
else
  cp -a Makefile README.md CHANGELOG.md common daemon debian docs extension models monitoring sql "$new"/
  rm -rf "$new"/daemon/build* "$new"/extension/build-asan
  find "$new" \( -name '*.o' -o -name '*.so' -o -name '*.d' -o -name '*.bc' \) -delete
fi
# the previous package build's objects (paths as in the source tree)
if [ -d "$src" ]; then
  [ -d "$src/daemon/build" ] && mv "$src/daemon/build" "$new/daemon/build"
  for f in "$src"/extension/*.o "$src"/extension/*.so "$src"/common/*.o; do
    [ -e "$f" ] && mv "$f" "$new/${f#"$src"/}"
  done
fi
rm -rf "$src"
mv "$new" "$src"
rm -f "$out"/*.deb "$out"/*.buildinfo "$out"/*.changes

cd "$src"
# -b: binary packages only; -nc: no clean first (keeps the objects); the
# .deb, .buildinfo and .changes go to the parent directory, build/deb
dpkg-buildpackage -b -us -uc -nc -j"$jobs"
ls -l "$out"/*.deb
