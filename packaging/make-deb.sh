#!/bin/bash
# make-deb.sh - `make deb`: build dist/jupyterhub-go_<version>_<arch>.deb from this source tree with
# dpkg-buildpackage and debhelper. dpkg-buildpackage wants debian/ at the top of the tree, and the
# tree should stay clean, so the build runs in a scratch copy (the files git tracks plus untracked,
# not ignored ones: a fresh clone with your edits) with packaging/debian as debian/.
# Offline apart from the Go module proxy: Go and the module cache are this user's (go on PATH).
# Lintian errors fail it.
# Host packages it needs are installed with apt-get when missing (as root).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf '[deb] %s\n' "$*" >&2; }
# shellcheck source=packaging/lib.sh
. packaging/lib.sh
need dpkg-buildpackage:dpkg-dev dh:debhelper gcc:gcc make:make lintian:lintian \
  /usr/include/security/pam_appl.h:libpam0g-dev
command -v go >/dev/null || { echo "make-deb.sh: go is not on PATH (see go.mod for the version)" >&2; exit 1; }

version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
work=$(mktemp -d "${TMPDIR:-/tmp}/jhgo-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/jupyterhub-go-$version

copy_tree "$src"
rm -rf "$src/debian"
cp -r packaging/debian "$src/debian"

say "dpkg-buildpackage -b ($version, $(go version | cut -d' ' -f3))"
start=$SECONDS
# -b: binary package only (a native source package is not published from here); -us -uc: unsigned.
(cd "$src" && dpkg-buildpackage -b -us -uc) > "$work/build.log" 2>&1 || {
  tail -n 60 "$work/build.log" >&2; echo "make-deb.sh: dpkg-buildpackage failed (log above)" >&2; exit 1; }

mkdir -p dist
rm -f dist/jupyterhub-go_*.deb
shopt -s nullglob
debs=("$work"/jupyterhub-go_"$version"_*.deb)
((${#debs[@]} == 1)) || { echo "make-deb.sh: expected one .deb, got: ${debs[*]}" >&2; exit 1; }
cp "${debs[0]}" dist/
say "dist/$(basename "${debs[0]}") ($(du -h "${debs[0]}" | cut -f1), $((SECONDS - start))s)"
# Lintian errors fail the build; its warnings are shown (test/packaging reports them too).
lintian --fail-on error "dist/$(basename "${debs[0]}")" 2>&1 | grep -v '^running with root privileges' >&2 || {
  echo "make-deb.sh: lintian reports errors (above)" >&2; exit 1; }
