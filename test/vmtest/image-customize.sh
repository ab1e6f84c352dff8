#!/bin/sh
# mmdebstrap --customize-hook for the vmtest image; runs on the host, $1 = rootfs,
# $VMTEST_PUBKEY = the ssh public key for root (used by `vmtest.sh ssh`).
# The same rootfs boots under qemu (`vmtest.sh run`) and systemd-nspawn (`vmtest.sh nspawn`).
# (Part of the image cache key: editing this file rebuilds the image.)
set -e
R=$1
echo vmtest > "$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 vmtest\n' > "$R/etc/hosts"
# qemu only; systemd-fstab-generator ignores device entries inside a container
printf '/dev/vda / ext4 rw,errors=remount-ro 0 0\n' > "$R/etc/fstab"
printf 'LANG=C.UTF-8\n' > "$R/etc/default/locale"
chroot "$R" passwd -d root >/dev/null

# Networking is only used by `ssh` and `demo`; they pull it in with systemd.wants= on the kernel cmdline.
mkdir -p "$R/etc/systemd/network"
printf '[Match]\nName=en*\n[Network]\nDHCP=ipv4\n' > "$R/etc/systemd/network/20-wired.network"

# Keep boot short and the ports free: tests start what they need (nfs-server, nginx).
# Debian's own jupyterhub.service would take port 8000: never start it.
for u in ssh.service ssh.socket systemd-networkd.service nfs-server.service nginx.service jupyterhub.service \
    slapd.service nslcd.service; do
  chroot "$R" systemctl disable "$u" >/dev/null 2>&1 || true
done
# Where the LDAP packages are in the image, LDAP stays off until the LDAP test turns it on the way
# the README tells an admin to (nsswitch, pam-auth-update): every other test sees local accounts only.
if [ -e "$R/usr/share/pam-configs/ldap" ]; then
  chroot "$R" pam-auth-update --package --remove ldap >/dev/null 2>&1 || true
fi
chroot "$R" systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_reap.service systemd-timesyncd.service >/dev/null 2>&1 || true

mkdir -p "$R/root/.ssh" "$R/mnt/io"
cp "$VMTEST_PUBKEY" "$R/root/.ssh/authorized_keys"
chmod 700 "$R/root/.ssh"

# The boot-time runner (qemu only: it needs vmtest.run=1 on the kernel cmdline): mount the 9p share
# "io" on /mnt/io, wait until boot has finished, run /mnt/io/script.sh with its output appended to
# /mnt/io/output (the host streams it), store the exit code in /mnt/io/rc, power off.
cat > "$R/usr/local/sbin/vmtest-runner" <<'RUNNER'
#!/bin/sh
mkdir -p /mnt/io
modprobe 9pnet_virtio
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=none io /mnt/io; then
  echo "VMTEST: cannot mount 9p share" > /dev/ttyS0; systemctl poweroff --force; exit 1
fi
timeout 300 systemctl is-system-running --wait >/dev/null 2>&1
state=$(systemctl is-system-running 2>/dev/null)
cat /proc/uptime > /mnt/io/ready
echo "VMTEST-READY uptime=$(cut -d' ' -f1 /proc/uptime) state=$state" > /dev/ttyS0
[ "$state" = running ] || systemctl --failed --no-pager --no-legend > /dev/ttyS0 2>&1
cd /mnt/io && chmod +x script.sh
./script.sh >> /mnt/io/output 2>&1 < /dev/null
echo $? > /mnt/io/rc.tmp && mv /mnt/io/rc.tmp /mnt/io/rc
sync; cd /; umount /mnt/io
systemctl poweroff --force     # -snapshot: nothing to preserve, skip the orderly shutdown
RUNNER
chmod +x "$R/usr/local/sbin/vmtest-runner"
# Type=simple, not oneshot: the boot must be able to finish while the script runs
# (tests may call `systemctl is-system-running --wait`).
cat > "$R/etc/systemd/system/vmtest-runner.service" <<'UNIT'
[Unit]
Description=vmtest: run /mnt/io/script.sh from the 9p share, then power off
ConditionKernelCommandLine=vmtest.run=1
After=basic.target
[Service]
Type=simple
Environment=HOME=/root LANG=C.UTF-8 TERM=dumb
ExecStart=/usr/local/sbin/vmtest-runner
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
UNIT
chroot "$R" systemctl enable vmtest-runner.service >/dev/null 2>&1
rm -rf "$R/var/cache/apt/archives/"*.deb "$R/var/lib/apt/lists/"*_Packages 2>/dev/null || true
