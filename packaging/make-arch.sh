#!/bin/bash
# make-arch.sh - `make arch`: build dist/jupyterhub-go-<version>-<rel>-<arch>.pkg.tar.gz with makepkg
# from packaging/arch/PKGBUILD, in a scratch copy of the source tree (the files git tracks plus
# untracked, not ignored ones). On Arch it is the ordinary makepkg; elsewhere (Debian's makepkg,
# from pacman-package-manager, as the tests use it) with --nodeps, since that pacman knows no
# Arch packages.
#
# makepkg refuses to run as root, because a PKGBUILD is arbitrary code. Run as root, this script
# builds as the throwaway system user jhgo-build (created if missing), which owns only the scratch
# copy and its own Go build cache (/var/tmp/jupyterhub-go-build-cache). The builder needs no network
# and no one's module cache: the Go modules are vendored into the copy first (from this user's
# module cache or the module proxy), and it builds with GOPROXY=off.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { printf '[arch] %s\n' "$*" >&2; }
# shellcheck source=packaging/lib.sh
. packaging/lib.sh
if [[ ! -f /etc/arch-release ]]; then
  # makepkg looks for pacman even with --nodeps
  need makepkg:makepkg pacman:pacman-package-manager bsdtar:libarchive-tools fakeroot:fakeroot gcc:gcc make:make \
    /usr/include/security/pam_appl.h:libpam0g-dev
fi
command -v go >/dev/null || { echo "make-arch.sh: go is not on PATH (see go.mod for the version)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/jhgo-arch.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
src=$work/src
copy_tree "$src"
say "go mod vendor"
(cd "$src" && go mod vendor)

goroot=$(go env GOROOT)
gocache=$work/gocache
run=()
if ((EUID == 0)); then
  builder=jhgo-build
  if ! id -u "$builder" >/dev/null 2>&1; then
    say "creating the system user $builder (makepkg does not run as root)"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$builder"
  fi
  # The Go build cache survives between runs (a cold build takes about a minute), owned by the
  # builder alone.
  gocache=/var/tmp/jupyterhub-go-build-cache
  # (a cache left by an earlier jhgo-build with another uid is of no use to this one)
  [[ ! -e $gocache || $(stat -c %U "$gocache") == "$builder" ]] || rm -rf "$gocache"
  install -d -m 0700 -o "$builder" -g "$builder" "$gocache"
  # Go may live where the builder cannot read it (a toolchain in root's module cache, as .ci/run
  # fetches one): then it gets a copy.
  if ! runuser -u "$builder" -- test -x "$goroot/bin/go"; then
    say "copying $goroot for $builder"
    cp -a "$goroot" "$work/go"
    goroot=$work/go
  fi
  chown -R "$builder:" "$src"
  install -d -o "$builder" -g "$builder" "$work/home" "$work/build" "$work/out" "$work/gopath"
  run=(runuser -u "$builder" --)
else
  mkdir -p "$work/home" "$work/build" "$work/out" "$work/gopath"
  gocache=$(go env GOCACHE)
fi

flags=(--force --noconfirm --noprogressbar)
[[ -f /etc/arch-release ]] || flags+=(--nodeps)
version=$(sed -n 's/^pkgver=//p' packaging/arch/PKGBUILD)
say "makepkg ${flags[*]} ($version, $("$goroot/bin/go" version | cut -d' ' -f3))"
start=$SECONDS
(cd "$src/packaging/arch" && "${run[@]}" env -i \
  PATH="$goroot/bin:/usr/local/bin:/usr/bin:/bin" HOME="$work/home" LANG=C.UTF-8 \
  GOROOT="$goroot" GOCACHE="$gocache" GOPATH="$work/gopath" GOPROXY=off GOTOOLCHAIN=local GOAMD64=v1 \
  BUILDDIR="$work/build" PKGDEST="$work/out" SRCDEST="$work/build" PKGEXT=.pkg.tar.gz \
  PACKAGER="jupyterhub-go make arch" \
  makepkg "${flags[@]}") > "$work/build.log" 2>&1 || {
  tail -n 60 "$work/build.log" >&2; echo "make-arch.sh: makepkg failed (log above)" >&2; exit 1; }

mkdir -p dist
rm -f dist/jupyterhub-go-*.pkg.tar.*
shopt -s nullglob
pkgs=("$work"/out/jupyterhub-go-"$version"-*.pkg.tar.gz)
((${#pkgs[@]} == 1)) || { echo "make-arch.sh: expected one package, got: ${pkgs[*]}" >&2; exit 1; }
cp "${pkgs[0]}" dist/
say "dist/$(basename "${pkgs[0]}") ($(du -h "${pkgs[0]}" | cut -f1), $((SECONDS - start))s)"
