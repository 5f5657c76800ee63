#!/bin/sh
# Managed by edgepair: rendered from the LoadBalancer spec. Local edits are overwritten.
# keepalived runs it as: /etc/edgepair/keepalived-notify.sh TYPE NAME STATE PRIORITY

PATH="${PATH:+$PATH:}/usr/sbin:/usr/bin:/sbin:/bin"
export PATH

state="${3:-}"
priority="${4:-0}"
[ "$state" = DELETED ] && state=STOP # the instance left the configuration: release like a stop

log() {
	if command -v logger >/dev/null 2>&1; then
		logger -t edgepair-notify -- "$*"
	fi
}

# One step of a transition. A failing step is logged and the transition goes on: stopping half-way leaves the
# pair in a worse state than a logged failure does.
step() {
	if ! out=$("$@" 2>&1); then
		log "failed: $* ($out)"
	fi
}

# Announcements wait between packets, so they run in the background, without the lock (fd 9).
announce() {
	("$@" >/dev/null 2>&1 || log "failed: $*") 9>&- &
}

keepalived_vip() {
	if [ -n "$(ip -o -4 addr show dev enp2s0 to 192.168.100.1/32 2>/dev/null)" ]; then
		echo held
	else
		echo released
	fi
}

[ -d /run/edgepair ] || mkdir -p /run/edgepair
if command -v flock >/dev/null 2>&1; then
	exec 9>/run/edgepair/vrrp.lock
	flock 9
fi
if [ "$state" = MASTER ]; then wanted=held; else wanted=released; fi
if [ "$wanted" != "$(keepalived_vip)" ]; then
	log "skipping $state: keepalived has moved on"
	exit 0
fi

case "$state" in
MASTER)
	step nft add element ip edgepair_handoff handoff_on '{ enp1s0, enp2s0 }'
	step timeout 10 conntrackd -c # commit the peer's flows into the kernel table
	step nft add element arp edgepair_service_arp holder '{ enp2s0 }'
	announce /usr/libexec/edgepair/edgepair-garp enp2s0
	step ip -4 addr replace 172.31.250.10/24 dev enp1s0
	announce arping -U -c 2 -I enp1s0 172.31.250.10
	log "entered $state (priority $priority)"
	step timeout 10 conntrackd -f # flush the internal and external caches
	step timeout 10 conntrackd -R # refill the internal cache from the kernel table
	step timeout 10 conntrackd -B # send the flows this LB now owns to the peer
	;;
BACKUP)
	step ip -4 addr flush dev enp1s0 to 172.31.250.10/32
	step nft flush set arp edgepair_service_arp holder
	step nft flush set ip edgepair_handoff handoff_on
	log "entered $state (priority $priority)"
	step timeout 10 conntrackd -t # purge stale forwarded flows after PurgeTimeout
	step timeout 10 conntrackd -n # ask the master for all its flows
	;;
FAULT)
	step ip -4 addr flush dev enp1s0 to 172.31.250.10/32
	step nft flush set arp edgepair_service_arp holder
	step nft flush set ip edgepair_handoff handoff_on
	log "entered $state (priority $priority)"
	step timeout 10 conntrackd -t # purge stale forwarded flows after PurgeTimeout
	;;
STOP)
	step ip -4 addr flush dev enp1s0 to 172.31.250.10/32
	step nft flush set arp edgepair_service_arp holder
	step nft flush set ip edgepair_handoff handoff_on
	log "entered $state (priority $priority)"
	step timeout 10 conntrackd -t # purge stale forwarded flows after PurgeTimeout
	;;
*)
	log "unknown state '$state' (arguments: $*)"
	exit 2
	;;
esac

# O_NONBLOCK: opening a FIFO without a reader fails at once (ENXIO) instead of hanging the transition.
if [ -p /run/edgepair/vrrp.fifo ]; then
	printf '%s %s\n' "$state" "$priority" | dd of=/run/edgepair/vrrp.fifo oflag=nonblock status=none 2>/dev/null ||
		log "agent not listening on the FIFO"
fi
exit 0
