#!/bin/sh
# Installs the stand-in's packages into a debootstrapped root: chroot-apt.sh ROOTFS PACKAGE...
# Run through `unshare --mount`: the proc, sys and dev mounts below live in a private mount namespace, so they are
# gone when this script ends, also when it fails or is killed, and never appear on the host.
set -eu

root=$1
shift

# No daemon may start inside the chroot (invoke-rc.d asks policy-rc.d; 101 = action forbidden).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
# dpkg's fsync after every file makes an install of ~200 packages take many minutes; a build that crashes is
# simply started again, so durability buys nothing here. Removed again below.
echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/edgepair-standin-unsafe-io"

mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"

export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
# INITRD=No: the kernel's postinst makes no initramfs, and so initramfs-tools' triggers (every later package with
# an initramfs hook) find none to update. It is made once below, with every hook installed: three runs of
# mkinitramfs cost minutes on two cores.
INITRD=No chroot "$root" apt-get update -q
INITRD=No chroot "$root" apt-get install -y -q --no-install-recommends "$@"
chroot "$root" apt-get clean
for kernel in "$root"/boot/vmlinuz-*; do
	chroot "$root" update-initramfs -c -k "${kernel##*/vmlinuz-}"
done

rm -f "$root/etc/dpkg/dpkg.cfg.d/edgepair-standin-unsafe-io"
