#!/bin/bash
# setup.sh - prepare a vmtest guest (qemu VM or nspawn container) for jupyterhub-go tests; run as root.
# Idempotent. Creates:
#   users alice (password alice-pw, uid 1001), bob (bob-pw, 1002), demo (demo, 1003), with homes;
#   group jupyter-users (gid 1100) = alice, bob;
#   PAM service /etc/pam.d/jupyterhub-go from pam.d-jupyterhub-go beside this script (vmtest.sh
#   puts packaging/pam.d/jupyterhub-go there under that name).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

pamsrc=$here/pam.d-jupyterhub-go
[[ -f $pamsrc ]] || { echo "setup.sh: $pamsrc is missing" >&2; exit 1; }
install -m 0644 "$pamsrc" /etc/pam.d/jupyterhub-go

getent group jupyter-users >/dev/null || groupadd -g 1100 jupyter-users

mkuser() { # NAME UID PASSWORD [GROUP]
  local name=$1 uid=$2 pw=$3 group=${4:-}
  if ! id -u "$name" >/dev/null 2>&1; then
    useradd -u "$uid" -U -m -d "/home/$name" -s /bin/bash "$name"
  fi
  [[ -d /home/$name ]] || { mkdir -p "/home/$name"; cp -rT /etc/skel "/home/$name"; chown -R "$name:" "/home/$name"; }
  echo "$name:$pw" | chpasswd
  if [[ -n $group ]]; then usermod -a -G "$group" "$name"; fi
}
mkuser alice 1001 alice-pw jupyter-users
mkuser bob 1002 bob-pw jupyter-users
mkuser demo 1003 demo

echo "setup.sh: users $(getent group jupyter-users | cut -d: -f4) in jupyter-users, demo; /etc/pam.d/jupyterhub-go installed"
