#!/bin/sh
# Runs INSIDE the stand-in's root (chroot), after images/rootfs and the agent bundle are copied in: what the
# Containerfile's RUN steps do, in Debian's terms, then the clean-up that makes one image fit many VMs.
# Prints "standin-fact: NAME VALUE" lines the builder records in the image's manifest.
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8

PRESET=/usr/lib/systemd/system-preset/50-edgepair.preset
REQUIRED=/usr/share/edgepair/required-executables
AGENT=/usr/libexec/edgepair/edgepair-agent.js

# Fedora's haproxy, keepalived and conntrackd ship no SysV scripts; Debian's do, and with them every `systemctl
# enable` of those units also runs update-rc.d: 7.4 s a unit under TCG (measured on an LB), three units in the
# agent's first-boot bootstrap. The native units are what both systems run.
for script in haproxy keepalived conntrackd; do
	update-rc.d -f "$script" remove >/dev/null
	rm -f "/etc/init.d/$script"
done

# Enable and disable exactly what the image's preset file names (it says the same as the Containerfile's
# `systemctl enable/disable`), so the list lives in images/ only. A unit this Debian does not ship is skipped:
# cloud-init 22.4 has no cloud-init-main/cloud-init-network, and there is no bootc timer.
grep -E '^(enable|disable) ' "$PRESET" | while read -r action unit; do
	if [ -e "/usr/lib/systemd/system/$unit" ] || [ -e "/etc/systemd/system/$unit" ]; then
		systemctl "$action" "$unit"
	else
		echo "standin: $PRESET: $unit is not installed here: skipped"
	fi
done
# Debian's packages enable their daemons when installed; the preset above disabled the ones the agent starts.
for unit in haproxy.service keepalived.service conntrackd.service; do
	state=$(systemctl is-enabled "$unit" 2>/dev/null || true)
	if [ "$state" != disabled ]; then
		echo "standin: $unit is $state after the preset, expected disabled" >&2
		exit 1
	fi
done

# The appliance never updates packages in place (its timer, bootc-fetch-apply-updates, is masked): neither does the
# stand-in, whose VMs must not reach for a mirror on their own.
systemctl mask apt-daily.timer apt-daily-upgrade.timer

# The Containerfile's check: every program the units, the agent and the rendered files run. bootc is the one the
# stand-in lacks on purpose: the agent then turns its image switch off, the boot check logs and exits.
missing=""
while read -r cmd; do
	case "$cmd" in
	"" | "#"*) continue ;;
	bootc) echo "standin: bootc is not installed (no image switch on the stand-in)" ;;
	/*) test -x "$cmd" || missing="$missing $cmd" ;;
	*) command -v "$cmd" >/dev/null || missing="$missing $cmd" ;;
	esac
done <"$REQUIRED"
for f in /usr/libexec/edgepair/*; do test -x "$f" || missing="$missing $f"; done
if [ -n "$missing" ]; then
	echo "standin: missing programs:$missing" >&2
	exit 1
fi

# The runtime the agent gets, and proof the bundle loads on it.
echo "standin-fact: node $(node --version)"
echo "standin-fact: agent $(node "$AGENT" --version)"
echo "standin-fact: cloud-init $(cloud-init --version 2>&1 | awk '{print $2}')"

# One image, many VMs: nothing machine-specific may be in it. An empty machine-id makes systemd generate one at
# first boot (without a preset run: not "uninitialized"); cloud-init regenerates the SSH host keys.
: >/etc/machine-id
rm -f /var/lib/dbus/machine-id /etc/ssh/ssh_host_*
rm -f /usr/sbin/policy-rc.d /etc/resolv.conf
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/* /var/tmp/*
