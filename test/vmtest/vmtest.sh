#!/bin/bash
# vmtest.sh - run a script inside a throw-away Debian guest (bookworm, or trixie with VMTEST_SUITE) with real systemd, PAM and
# Debian's jupyterhub-singleuser: a qemu VM (TCG, no KVM needed) or, for a quick loop, systemd-nspawn.
#
#   vmtest.sh build                   build the image if it is not cached (mmdebstrap + mkfs.ext4 -d)
#   vmtest.sh run SCRIPT [FILE...]    boot the VM, run SCRIPT as root in /mnt/io with the FILEs beside it,
#                                     stream its output, power off, exit with SCRIPT's exit code
#   vmtest.sh nspawn SCRIPT [FILE...] the same in systemd-nspawn on the same rootfs (tmpfs overlay,
#                                     private network); fast, but cgroup limits are not enforced, no NFS
#   vmtest.sh demo HUB [FILE...]      boot the VM with 127.0.0.1:$DEMO_PORT -> guest :8000, run
#                                     test/guest/demo.sh (HUB = the jupyterhub-go binary), until Ctrl-C
#   vmtest.sh ssh                     boot the VM with sshd on 127.0.0.1:$VMTEST_SSH_PORT (debugging)
#   vmtest.sh path                    print the cached image directory (rootfs/ is the nspawn tree)
#   vmtest.sh clean                   delete cached images other than the current one
#
# Every run's /mnt/io also holds test/guest/*.sh and pam.d-jupyterhub-go (from packaging/pam.d/).
#
# Env: VMTEST_DIR (cache, default ${XDG_CACHE_HOME:-$HOME/.cache}/jupyterhub-go-vmtest),
#      VMTEST_MEM (2048 MiB), VMTEST_SMP (2), VMTEST_TIMEOUT (900 s, hard limit of a run/nspawn),
#      VMTEST_BOOT_TIMEOUT (300 s: a guest not up by then is killed and booted once more),
#      VMTEST_SUITE (bookworm | trixie), VMTEST_EXTRA=pkg1,pkg2 (more Debian packages; part of the cache key), VMTEST_MIRROR,
#      VMTEST_ACCEL (default: kvm only if the CPU has vmx/svm and a short probe boot under KVM
#      shows that guests actually run, else tcg,thread=multi; set it to skip the probe and force
#      one), VMTEST_KVM_PROBE_TIMEOUT (20 s), VMTEST_CPU (host under KVM, else qemu64), VMTEST_MACHINE,
#      VMTEST_CONSOLE=1 (print the serial console after a run), VMTEST_DEBUG=1 (verbose boot),
#      VMTEST_NSPAWN_MODE (overlay | ephemeral), VMTEST_SSH_PORT (2222), DEMO_PORT (8000),
#      VMTEST_NICE (10: niceness of the image build), VMTEST_KEEP=1 (keep the share dir of a run).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST=$(cd "$HERE/../guest" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
D=${VMTEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/jupyterhub-go-vmtest}
# bookworm: jupyterhub-singleuser 3.0 with the classic notebook (/tree); trixie: 5.2.1 with
# JupyterLab 4 on jupyter_server 2 (/lab). Each suite is its own cached image.
# The host's cgo binaries (hub, tests) need a guest glibc at least as new as the host's: for the
# demo, a host newer than bookworm (glibc 2.36) gets the trixie guest (2.41) unless told otherwise.
host_glibc=$(ldd --version 2>/dev/null | awk 'NR==1{print $NF}')
newer() { [[ $(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -1) == "$1" && $1 != "$2" ]]; }
if [[ -z ${VMTEST_SUITE:-} && ${1:-} == demo && -n $host_glibc ]] && newer "$host_glibc" 2.36; then
  VMTEST_SUITE=trixie
fi
SUITE=${VMTEST_SUITE:-bookworm}
# The LDAP login test (an account that exists only in slapd, reached through nslcd's NSS and PAM
# modules) runs in the bookworm guest only, so only its image carries slapd.
case $SUITE in
  bookworm) NOTEBOOK=python3-notebook GUEST_GLIBC=2.36
            SUITE_PKGS=(slapd ldap-utils nslcd libnss-ldapd libpam-ldapd) ;;
  trixie) NOTEBOOK=jupyterlab GUEST_GLIBC=2.41 SUITE_PKGS=() ;;
  *) echo "VMTEST_SUITE must be bookworm or trixie, not $SUITE" >&2; exit 2 ;;
esac
SMP=${VMTEST_SMP:-2}
MEM=${VMTEST_MEM:-2048}
TMO=${VMTEST_TIMEOUT:-900}
SSH_PORT=${VMTEST_SSH_PORT:-2222}
DEMO_PORT=${DEMO_PORT:-8000}
MACHINE=${VMTEST_MACHINE:-microvm,pcie=on,rtc=on}
MIRROR=${VMTEST_MIRROR:-}   # empty: mmdebstrap's default Debian mirror
NICE=${VMTEST_NICE:-10}
ACCEL='' CPU=''   # chosen by choose_accel, once the image (whose kernel the KVM probe boots) exists

# The image: packages + dpkg options + the two hook files make the cache key.
PKGS=(
  # boot, systemd, kernel, initrd
  systemd-sysv udev dbus kmod linux-image-amd64 initramfs-tools zstd iproute2 procps
  # peers the hub talks to
  jupyterhub "$NOTEBOOK" libpam-modules passwd nginx nfs-kernel-server nfs-common
  # tools for tests and debugging
  curl ca-certificates openssh-server python3-minimal
  ${SUITE_PKGS[@]+"${SUITE_PKGS[@]}"}
)
IFS=, read -r -a _extra <<< "${VMTEST_EXTRA:-}"
PKGLIST=$(printf '%s\n' "${PKGS[@]}" ${_extra[@]+"${_extra[@]}"} | sed '/^$/d' | sort -u | paste -sd,)
DPKGOPTS=('path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/doc/*'
          'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/locale/locale.alias')
KEY=$({ echo "$SUITE minbase"; echo "$PKGLIST"; printf '%s\n' "${DPKGOPTS[@]}"
        cat "$HERE/image-essential.sh" "$HERE/image-customize.sh"; } | sha256sum | cut -c1-16)
IMG=$D/image-$KEY

log() { printf '[vmtest %s] %s\n' "$(date +%T)" "$*" >&2; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}'; }

# need CMD-or-PATH:PKG... (shared with the packaging scripts) installs missing host packages.
say() { log "$@"; }
# shellcheck source=packaging/lib.sh
. "$HERE/../../packaging/lib.sh"
need_qemu() { need qemu-system-x86_64:qemu-system-x86 ssh-keygen:openssh-client; }

have_image() { [[ -f $IMG/root.img && -f $IMG/vmlinuz && -f $IMG/initrd.img && -d $IMG/rootfs/usr ]]; }

build() {
  if have_image; then log "image present: $IMG"; return 0; fi
  need mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs ssh-keygen:openssh-client \
    /usr/share/keyrings/debian-archive-keyring.gpg:debian-archive-keyring
  mkdir -p "$D"
  exec 9>"$D/build.lock"
  flock 9   # one build at a time; a second caller waits and then finds the image
  if have_image; then exec 9>&-; log "image present: $IMG"; return 0; fi
  local t0=$SECONDS t1 tmp=$IMG.tmp
  rm -rf "$tmp"; mkdir -p "$tmp"
  [[ -f $D/id_vmtest ]] || ssh-keygen -q -t ed25519 -N '' -C vmtest -f "$D/id_vmtest"
  local opts=() o
  for o in "${DPKGOPTS[@]}"; do opts+=(--dpkgopt="$o"); done
  log "building image $KEY: mmdebstrap $SUITE ($PKGLIST)"
  t1=$SECONDS
  VMTEST_PUBKEY=$D/id_vmtest.pub nice -n "$NICE" mmdebstrap --variant=minbase --mode=root \
    --include="$PKGLIST" "${opts[@]}" \
    --essential-hook="sh '$HERE/image-essential.sh' \"\$1\"" \
    --customize-hook="sh '$HERE/image-customize.sh' \"\$1\"" \
    "$SUITE" "$tmp/rootfs" ${MIRROR:+"$MIRROR"} >&2
  log "mmdebstrap took $((SECONDS-t1))s"
  cp -L "$tmp/rootfs/vmlinuz" "$tmp/vmlinuz"; cp -L "$tmp/rootfs/initrd.img" "$tmp/initrd.img"
  local mb; mb=$(du -sm "$tmp/rootfs" | cut -f1)
  t1=$SECONDS
  nice -n "$NICE" mkfs.ext4 -q -F -L vmroot -d "$tmp/rootfs" "$tmp/root.img" "$((mb + mb/2 + 512))M"
  log "mkfs.ext4 -d took $((SECONDS-t1))s (rootfs ${mb} MiB)"
  printf '%s\n' "$PKGLIST" > "$tmp/packages"
  rm -rf "$IMG"; mv "$tmp" "$IMG"
  exec 9>&-
  log "build done in $((SECONDS-t0))s: $IMG (root.img $(du -sh --apparent-size "$IMG/root.img" | cut -f1) apparent, $(du -sh "$IMG/root.img" | cut -f1) on disk)"
}

# A writable /dev/kvm is not proof that KVM works: on a nested kvm-pvm host (no vmx/svm in the CPU
# flags) qemu -cpu host aborts on an MSR and with other CPU models the kernel hangs after the boot
# stub's first line, so a run would sit out its whole VMTEST_TIMEOUT. So KVM is used only when the
# CPU has vmx/svm and the image's kernel, booted under KVM with no disk, gets to its "cannot mount
# root" panic within VMTEST_KVM_PROBE_TIMEOUT (panic=-1 plus -no-reboot end qemu there, so a
# working KVM answers in seconds). The verdict is kept in $D/kvm-verdict for this host boot, qemu,
# machine, CPU model and image, so later runs skip the probe.
TCG=tcg,thread=multi
KVM_VERDICT=$D/kvm-verdict

# kvm_probe - succeeds if KVM boots the image's kernel in time; sets WHY either way. Any output is
# not enough: on kvm-pvm the boot stub still prints "Probing EDD ... ok", then the kernel hangs.
kvm_probe() {
  local tmo=${VMTEST_KVM_PROBE_TIMEOUT:-20} dir t0=$EPOCHREALTIME rc=0 took ok=1
  dir=$(mktemp -d "$D/run.kvm-probe.XXXXXX")   # run.*: clean() removes it if we die mid-probe
  log "probing KVM: booting the image's kernel without a disk (up to ${tmo} s, VMTEST_KVM_PROBE_TIMEOUT)"
  timeout --kill-after=5 "$tmo" qemu-system-x86_64 -machine "$MACHINE" -accel kvm -cpu "${VMTEST_CPU:-host}" \
    -smp 1 -m 256 -nodefaults -display none -no-reboot -kernel "$IMG/vmlinuz" -append "console=ttyS0 panic=-1" \
    -serial file:"$dir/console" > "$dir/qemu.out" 2>&1 < /dev/null & QPID=$!
  wait "$QPID" 2>/dev/null || rc=$?; QPID=''   # 2>/dev/null: no "Aborted" job notice when qemu asserts
  took=$(since "$t0")
  # rc 0 alone is no proof: a triple fault also ends qemu under -no-reboot, silently
  if ((rc == 0)) && grep -q 'Linux version' "$dir/console"; then
    ok=0 WHY="KVM probe kernel booted to its root mount in ${took} s"
  elif ((rc == 124 || rc == 137)) && [[ -s $dir/console ]]; then
    WHY="KVM probe kernel did not boot within ${tmo} s, its console stops at \"$(tr -d '\r' < "$dir/console" | grep . | tail -1 || true)\""
  elif ((rc == 124 || rc == 137)); then
    WHY="KVM probe printed nothing within ${tmo} s"
  else
    WHY="KVM probe: qemu exited with status $rc after ${took} s: $(grep -m1 -i error "$dir/qemu.out" || grep -m1 . "$dir/qemu.out" || echo 'no kernel boot')"
  fi
  rm -rf "$dir"
  return "$ok"
}

# choose_accel - sets ACCEL and CPU (once) and says which and why
choose_accel() {
  [[ -n $ACCEL ]] && return 0
  local why key k a w
  if [[ -n ${VMTEST_ACCEL:-} ]]; then ACCEL=$VMTEST_ACCEL why="VMTEST_ACCEL set"
  elif [[ ! -e /dev/kvm ]]; then ACCEL=$TCG why="no /dev/kvm"
  elif [[ ! -w /dev/kvm ]]; then ACCEL=$TCG why="/dev/kvm is not writable by $(id -un)"
  elif ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
    ACCEL=$TCG why="/dev/kvm present but the CPU has no vmx/svm flag"
  else
    key="$(cat /proc/sys/kernel/random/boot_id) $(qemu-system-x86_64 --version | sed -n 1p) $MACHINE ${VMTEST_CPU:-host} $KEY"
    if [[ -f $KVM_VERDICT ]] && IFS=$'\t' read -r k a w < "$KVM_VERDICT" && [[ $k == "$key" ]]; then
      ACCEL=$a why="cached in $KVM_VERDICT: $w"
    else
      if kvm_probe; then ACCEL=kvm; else ACCEL=$TCG; fi
      why=$WHY
      if ! { printf '%s\t%s\t%s\n' "$key" "$ACCEL" "$why" > "$KVM_VERDICT.$$" && mv "$KVM_VERDICT.$$" "$KVM_VERDICT"; }; then
        log "could not save the verdict in $KVM_VERDICT: the next run probes again"
      fi
    fi
  fi
  if [[ $ACCEL == kvm* ]]; then CPU=${VMTEST_CPU:-host}; else CPU=${VMTEST_CPU:-qemu64}; fi
  log "accel: $ACCEL, cpu $CPU ($why)"
}

# qemu_cmd IO_DIR CMDLINE_ARGS... -- QEMU_ARGS...   sets the array QEMU
qemu_cmd() {
  local io=$1; shift
  choose_accel   # before the command line: the TSC workaround below depends on it
  local cmdline="console=ttyS0 root=/dev/vda rw rootfstype=ext4 mitigations=off"
  if [[ ${VMTEST_DEBUG:-0} = 1 ]]; then cmdline+=" loglevel=7 systemd.show_status=true"
  else cmdline+=" quiet loglevel=3 systemd.show_status=false"; fi
  # microvm has no HPET/ACPI-PM timer: if PIT calibration fails (busy host) the guest kernel hangs
  # early, so hand it the TSC frequency (under TCG the guest TSC runs at the host's rate).
  if [[ $MACHINE == microvm* && $ACCEL == tcg* ]]; then
    cmdline+=" tsc_early_khz=$(awk -F': ' '/^cpu MHz/{printf "%d", $2*1000; exit}' /proc/cpuinfo) tsc=reliable"
  fi
  cmdline+=" ${VMTEST_APPEND:-}"
  while (($#)) && [[ $1 != -- ]]; do cmdline+=" $1"; shift; done
  (($#)) && shift
  # shellcheck disable=SC2054  # commas inside qemu option values
  QEMU=(qemu-system-x86_64
    -machine "$MACHINE" -accel "$ACCEL" -cpu "$CPU" -smp "$SMP" -m "$MEM"
    -nodefaults -display none -no-reboot
    -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" -append "$cmdline"
    -drive file="$IMG/root.img",if=virtio,format=raw,snapshot=on,cache=unsafe
    -virtfs local,path="$io",mount_tag=io,security_model=none,id=io
    -device virtio-rng-pci
    "$@")
}

# new_io SCRIPT FILE... - a fresh share dir with SCRIPT as script.sh and the FILEs beside it, plus
# the guest helpers every run gets: test/guest/*.sh (setup.sh, ...) and the PAM service file
# packaging/pam.d/jupyterhub-go as pam.d-jupyterhub-go (setup.sh installs it).
new_io() {
  IO=$(mktemp -d "$D/run.XXXXXX")
  cp "$GUEST"/*.sh "$IO/"
  cp "$REPO/packaging/pam.d/jupyterhub-go" "$IO/pam.d-jupyterhub-go"
  cp "$1" "$IO/script.sh"; chmod +x "$IO/script.sh"; shift
  (($#)) && cp -r -- "$@" "$IO/"
  : > "$IO/output"
}

QPID='' IO='' WHY=''
cleanup() {
  [[ -n $QPID ]] && kill "$QPID" 2>/dev/null && wait "$QPID" 2>/dev/null
  [[ -n $IO && ${VMTEST_KEEP:-0} != 1 ]] && rm -rf "$IO"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ready_watcher prints the boot time once the guest runner reports in. A guest that has not
# reported in after BOOT_TMO seconds is taken for hung at boot (seen on a busy host under TCG: an
# empty console and idle vCPUs for as long as one waits): it is killed and $IO/boot-hung written,
# so that run can boot it once more instead of sitting out the whole VMTEST_TIMEOUT.
BOOT_TMO=${VMTEST_BOOT_TIMEOUT:-300}
ready_watcher() {
  local t0=$1 qpid=$2 deadline=$((SECONDS + BOOT_TMO))
  while [[ ! -s $IO/ready ]]; do
    sleep 0.2
    [[ -d $IO ]] && kill -0 "$qpid" 2>/dev/null || return 0
    if ((SECONDS > deadline)); then
      printf '[vmtest] guest did not report in within %ss (VMTEST_BOOT_TIMEOUT): killing it; console tail:\n' "$BOOT_TMO" >&2
      tail -n 5 "$IO/console.log" >&2
      : > "$IO/boot-hung"
      kill "$qpid" 2>/dev/null
      return 0
    fi
  done
  printf '[vmtest] guest ready after %ss (host wall clock); guest uptime %ss\n' \
    "$(since "$t0")" "$(cut -d' ' -f1 "$IO/ready")" >&2
}

run() {
  local script=${1:?usage: vmtest.sh run SCRIPT [FILE...]}; shift
  need_qemu; build; choose_accel
  new_io "$script" "$@"
  local t0 qrc watcher attempt
  for attempt in 1 2; do
    t0=$EPOCHREALTIME qrc=0
    rm -f "$IO/boot-hung" "$IO/ready"; : > "$IO/output"
    qemu_cmd "$IO" vmtest.run=1 -- -serial file:"$IO/console.log" -nic none
    timeout --kill-after=10 "$TMO" "${QEMU[@]}" & QPID=$!
    ready_watcher "$t0" "$QPID" & watcher=$!
    tail --pid="$QPID" -n +1 -f "$IO/output" || true   # stream the script's output
    wait "$QPID" || qrc=$?; QPID=''
    kill "$watcher" 2>/dev/null || true; wait "$watcher" 2>/dev/null || true
    [[ -f $IO/boot-hung && $attempt = 1 ]] || break
    echo "[vmtest] booting the guest once more" >&2
  done
  printf '[vmtest] VM round trip %ss (qemu rc %s)\n' "$(since "$t0")" "$qrc" >&2
  cp "$IO/console.log" "$D/last-console.log" 2>/dev/null || true
  [[ ${VMTEST_CONSOLE:-0} = 1 ]] && { echo "----- serial console -----" >&2; cat "$IO/console.log" >&2; }
  if [[ ! -f $IO/rc ]]; then
    ((qrc == 124 || qrc == 137)) && echo "[vmtest] TIMEOUT after ${TMO}s (VMTEST_TIMEOUT)" >&2
    echo "[vmtest] no exit code from the guest (timeout or boot failure); console tail:" >&2
    tail -n 30 "$IO/console.log" >&2
    return 125
  fi
  local rc; rc=$(cat "$IO/rc")
  if ((rc != 0)) && [[ ${VMTEST_CONSOLE:-0} != 1 ]]; then
    echo "[vmtest] console tail ($D/last-console.log):" >&2; tail -n 20 "$IO/console.log" >&2
  fi
  echo "[vmtest] exit code $rc" >&2
  return "$rc"
}

# container_init NSPAWN_PID - the host pid of the container's PID 1 (a process below nspawn whose
# innermost pid is 1), once it runs systemd
container_init() {
  local p ns
  for p in $(pgrep -P "$1"); do
    ns=$(awk '/^NSpid:/{print NF-1, $NF}' "/proc/$p/status" 2>/dev/null) || continue
    [[ $ns == "2 1" && $(cat "/proc/$p/comm" 2>/dev/null) == systemd ]] && { echo "$p"; return 0; }
  done
  return 1
}

nspawn() {
  local script=${1:?usage: vmtest.sh nspawn SCRIPT [FILE...]}; shift
  need systemd-nspawn:systemd-container nsenter:util-linux pgrep:procps
  build
  new_io "$script" "$@"
  local name mode=${VMTEST_NSPAWN_MODE:-overlay} t0=$EPOCHREALTIME init='' state='' rc=0 deadline
  name=vmtest-$$
  local args=(-q -D "$IMG/rootfs" --boot --register=no --keep-unit -M "$name" --private-network
              --bind="$IO:/mnt/io" --console=read-only
              # no rpc_pipefs in a container (it is for NFS, which only the VM has): keep the boot clean
              --bind-ro=/dev/null:/etc/systemd/system/run-rpc_pipefs.mount)
  case $mode in
    overlay) args+=(--volatile=overlay) ;;   # rootfs read-only below a tmpfs: nothing persists
    ephemeral) args+=(--ephemeral) ;;        # a throw-away copy (a full copy unless btrfs)
    *) echo "VMTEST_NSPAWN_MODE must be overlay or ephemeral" >&2; return 2 ;;
  esac
  systemd-nspawn "${args[@]}" > "$IO/console.log" 2>&1 < /dev/null & QPID=$!
  deadline=$((SECONDS + 120))
  until init=$(container_init "$QPID"); do
    if ! kill -0 "$QPID" 2>/dev/null || ((SECONDS > deadline)); then
      echo "[vmtest] systemd-nspawn did not start; its output:" >&2; tail -n 30 "$IO/console.log" >&2; return 125
    fi
    sleep 0.2
  done
  local ns=(nsenter -t "$init" -a)
  while ((SECONDS <= deadline)); do
    state=$(timeout 60 "${ns[@]}" systemctl is-system-running --wait 2>/dev/null) || true
    [[ $state == running || $state == degraded ]] && break
    sleep 0.5
  done
  printf '[vmtest] container %s up after %ss (state %s)\n' "$name" "$(since "$t0")" "${state:-unknown}" >&2
  if [[ $state != running ]]; then
    "${ns[@]}" systemctl --failed --no-pager --no-legend >&2 || true
    [[ $state == degraded ]] || { echo "[vmtest] container did not finish booting" >&2; tail -n 30 "$IO/console.log" >&2; return 125; }
  fi
  local t1=$EPOCHREALTIME
  timeout --kill-after=10 "$TMO" "${ns[@]}" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM=dumb /bin/sh -c 'cd /mnt/io && exec ./script.sh' < /dev/null 2>&1 || rc=$?
  ((rc == 124 || rc == 137)) && echo "[vmtest] TIMEOUT after ${TMO}s (VMTEST_TIMEOUT)" >&2
  printf '[vmtest] script took %ss\n' "$(since "$t1")" >&2
  "${ns[@]}" systemctl poweroff --no-block >/dev/null 2>&1 || kill -s RTMIN+4 "$init" 2>/dev/null || true
  timeout 60 tail --pid="$QPID" -f /dev/null || kill "$QPID" 2>/dev/null || true
  wait "$QPID" 2>/dev/null || true; QPID=''
  printf '[vmtest] nspawn round trip %ss\n' "$(since "$t0")" >&2
  cp "$IO/console.log" "$D/last-console.log" 2>/dev/null || true
  [[ ${VMTEST_CONSOLE:-0} = 1 ]] && { echo "----- container console -----" >&2; cat "$IO/console.log" >&2; }
  echo "[vmtest] exit code $rc" >&2
  return "$rc"
}

demo() {
  local hub=${1:?usage: vmtest.sh demo JUPYTERHUB_GO_BINARY [FILE...]}
  [[ -f $hub ]] || { echo "no such file: $hub" >&2; return 2; }
  if [[ -n $host_glibc ]] && newer "$host_glibc" "$GUEST_GLIBC"; then
    echo "[vmtest] this machine's glibc $host_glibc is newer than the $SUITE guest's $GUEST_GLIBC: the hub built here cannot run there. Build on Debian 12/13 or Ubuntu 22.04/24.04, or set VMTEST_SUITE=trixie (glibc 2.41)." >&2
    return 2
  fi
  need_qemu; need curl:curl; build; choose_accel
  new_io "$GUEST/demo.sh" "$@"
  [[ $(basename "$hub") == jupyterhub-go ]] || cp "$hub" "$IO/jupyterhub-go"
  # An admin besides the demo user, with a password made for this run.
  local pw; pw=$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 12)
  printf '%s\n' "$pw" > "$IO/admin-password"
  local url=http://127.0.0.1:$DEMO_PORT/ t0=$EPOCHREALTIME deadline=$((SECONDS + ${DEMO_TIMEOUT:-600}))
  qemu_cmd "$IO" vmtest.run=1 systemd.wants=systemd-networkd.service -- -serial file:"$IO/console.log" \
    -netdev user,id=n0,hostfwd=tcp:127.0.0.1:"$DEMO_PORT"-:8000 -device virtio-net-pci,netdev=n0
  log "booting the demo VM ($SUITE, ${MEM} MiB, accel $ACCEL): usually 1-3 minutes; Ctrl-C stops it"
  "${QEMU[@]}" & QPID=$!
  tail --pid="$QPID" -n +1 -f "$IO/output" &
  # slirp accepts the connection before the guest listens: wait for a real HTTP status
  until [[ $(curl -s -o /dev/null -m 5 -w '%{http_code}' "${url}hub/login" 2>/dev/null) != 000 ]]; do
    kill -0 "$QPID" 2>/dev/null || { echo "[vmtest] the VM stopped; console tail:" >&2; tail -n 30 "$IO/console.log" >&2; return 1; }
    if ((SECONDS > deadline)); then
      echo "[vmtest] the hub did not answer within ${DEMO_TIMEOUT:-600}s (DEMO_TIMEOUT); console tail:" >&2
      tail -n 30 "$IO/console.log" >&2
      return 1
    fi
    sleep 2
  done
  printf '\n[vmtest] the demo hub answers after %ss:\n\n    %s\n\n    log in as  demo / demo            (a user)\n               admin / %s    (an admin: /hub/token, the API)\n               alice / alice-pw, bob / bob-pw\n\n    Ctrl-C stops the VM; nothing of it is kept.\n\n' \
    "$(since "$t0")" "$url" "$pw" >&2
  wait "$QPID" || true; QPID=''
}

sshvm() {
  need_qemu; build; choose_accel
  IO=$(mktemp -d "$D/run.XXXXXX")
  log "sshd: ssh -i $D/id_vmtest -p $SSH_PORT -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1"
  log "serial console: $IO/console.log"
  qemu_cmd "$IO" systemd.wants=ssh.service systemd.wants=systemd-networkd.service -- \
    -serial file:"$IO/console.log" \
    -netdev user,id=n0,hostfwd=tcp:127.0.0.1:"$SSH_PORT"-:22 -device virtio-net-pci,netdev=n0
  "${QEMU[@]}" & QPID=$!
  wait "$QPID" || true; QPID=''
}

clean() { # other images, and share dirs left by runs that died more than a day ago
  local d
  for d in "$D"/image-*; do
    [[ -e $d && $d != "$IMG" ]] || continue
    log "removing $d"; rm -rf "$d"
  done
  find "$D" -maxdepth 1 -name 'run.*' -mtime +0 -exec rm -rf {} + 2>/dev/null || true
}

case ${1:-} in
  build) build; echo "$IMG" ;;
  run) shift; run "$@" ;;
  nspawn) shift; nspawn "$@" ;;
  demo) shift; demo "$@" ;;
  ssh) sshvm ;;
  path) echo "$IMG" ;;
  clean) clean ;;
  *) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 2 ;;
esac
