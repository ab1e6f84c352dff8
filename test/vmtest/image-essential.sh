#!/bin/sh
# mmdebstrap --essential-hook for the vmtest image; runs on the host, $1 = rootfs.
# A small initrd: only what is needed to find an ext4 root on virtio-blk.
# (Part of the image cache key: editing this file rebuilds the image.)
set -e
R=$1
mkdir -p "$R/etc/initramfs-tools/conf.d" "$R/etc/initramfs-tools/hooks"
printf 'MODULES=list\nCOMPRESS=zstd\n' > "$R/etc/initramfs-tools/conf.d/vmtest.conf"
cat > "$R/etc/initramfs-tools/hooks/vmtest" <<'H'
#!/bin/sh
case "$1" in prereqs) echo ""; exit 0;; esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules virtio_pci virtio_blk ext4 crc32c_generic
H
chmod +x "$R/etc/initramfs-tools/hooks/vmtest"
