#!/bin/bash
# rootfs.sh - print the path of a Debian trixie rootfs holding systemd, dbus, Python JupyterHub
# 5.2.1, Debian's configurable-http-proxy and jupyter_server (what jupyterhub-singleuser runs on:
# Debian's jupyterhub only recommends it), building it first if it is not cached.
# The cache key is this file's content, so editing the package list rebuilds it; the tree is
# kept read-only below ~/.cache/jupyterhub-go-bench and booted with --volatile=overlay, so a run
# leaves nothing behind in it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
D=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jupyterhub-go-bench}
PKGS=systemd-sysv,dbus,jupyterhub,node-configurable-http-proxy,python3-jupyter-server,procps,iproute2,passwd,curl,ca-certificates
KEY=$(cat "$HERE/rootfs.sh" | sha256sum | cut -c1-16)
ROOT=$D/rootfs-$KEY
log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
if [[ -d $ROOT/usr ]]; then echo "$ROOT"; exit 0; fi
mkdir -p "$D"
exec 9>"$D/build.lock"
flock 9
if [[ -d $ROOT/usr ]]; then echo "$ROOT"; exit 0; fi
command -v mmdebstrap >/dev/null || { echo "rootfs.sh: please install mmdebstrap" >&2; exit 1; }
log "building the trixie rootfs $KEY ($PKGS); a few minutes"
rm -rf "$ROOT.tmp"
# Debian's own jupyterhub.service would take port 8000 at boot: the bench starts both hubs itself.
nice -n 10 mmdebstrap --variant=minbase --mode=root --include="$PKGS" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --customize-hook='echo benchguest > "$1/etc/hostname"' \
  --customize-hook='chroot "$1" passwd -d root >/dev/null' \
  --customize-hook='chroot "$1" systemctl disable jupyterhub.service >/dev/null 2>&1 || true' \
  --customize-hook='chroot "$1" systemctl mask systemd-networkd.service systemd-resolved.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service >/dev/null 2>&1 || true' \
  trixie "$ROOT.tmp" >&2
mv "$ROOT.tmp" "$ROOT"
log "rootfs ready: $ROOT"
echo "$ROOT"
