#!/bin/sh
# Makes a raw disk image bootable by a BIOS (libvirt's default machine, QEMU's SeaBIOS): extlinux in the root
# filesystem's boot sector and syslinux' MBR code, which boots the partition marked active.
#
#   install-bootloader.sh DISK PARTITION_OFFSET PARTITION_BYTES MOUNTPOINT
#
# Run through `unshare --mount`: the mount exists in a private namespace only and is gone with this script; the
# loop device is detached by the trap, also on failure or SIGTERM (the builder's timeout).
set -eu

disk=$1
offset=$2
size=$3
mnt=$4

loop=$(losetup --find --show --offset "$offset" --sizelimit "$size" "$disk")
cleanup() {
	umount "$mnt" 2>/dev/null || true
	losetup -d "$loop" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The filesystem mke2fs -d wrote, checked read-only before anything boots from it.
e2fsck -fn "$loop"
mount "$loop" "$mnt"
extlinux --install "$mnt/boot/extlinux"
umount "$mnt"
# 440 bytes: the boot code only; the partition table that follows it stays.
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$disk" bs=440 count=1 conv=notrunc status=none
