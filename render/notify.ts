/**
 * /etc/edgepair/keepalived-notify.sh: the VRRP transition hot path. keepalived runs it as
 * `keepalived-notify.sh TYPE NAME STATE PRIORITY` on every state change. POSIX sh, no Node.js start-up.
 *
 * Order on MASTER: the connection handoff to the peer goes on first (handoff.ts: packets of connections the peer's
 * HAProxy accepted go back to it from the first packet the platform re-points here); conntrackd commits the peer's flows into the kernel table BEFORE the public addresses move here,
 * so the first packet of a synced flow finds its conntrack (and NAT) entry instead of being dropped as INVALID.
 * The rest of conntrack-tools' primary-backup.sh sequence (flush, resync, bulk send) follows the move: it only
 * rebuilds conntrackd's own caches, and each call costs ~15 ms that would otherwise lengthen the outage.
 * Other states release the public addresses first (stop answering as early as possible), turn the handoff off (only
 * a MASTER hands off, so two LBs never bounce a packet between them), then conntrackd follows
 * primary-backup.sh. Last, one line "<STATE> <PRIORITY>" goes to the agent's FIFO, without ever blocking when the
 * agent does not listen.
 *
 * The path up to the address change is kept lean: every program started before it delays the move. Only what
 * correctness needs runs first (the lock, the staleness check, the commit); the log line of a transition is written
 * after its addresses moved, and the run directory is created only when it is missing. Measured in the network-
 * namespace lab under client load (2 CPUs, 8 clean stops each): the next hop followed keepalived's VIP after a median
 * of 243 ms with logger and mkdir before the move, 119 ms without them.
 *
 * keepalived does not wait for a notify script, so transitions in quick succession (MASTER then STOP within a few
 * ms was seen in tests) run copies at once, and the copy started last may reach the lock first. Copies therefore
 * run one at a time (flock), and each first checks keepalived's own VIP, which keepalived sets or removes BEFORE
 * it starts the script: a copy whose state no longer matches it is stale and does nothing. Whatever the order,
 * the public side ends in the state keepalived is in.
 */
import type { VirtualAddress } from "../spec/types";
import { handoffCommands } from "./handoff";
import { serviceArpCommands } from "./service-lb";
import { file, header, hostPrefix, lines, NO_RELOAD } from "./common";
import { type Command, floatingIpHandler, isAnnouncement } from "./floating-ip";
import type { KeepalivedState } from "./vrrp-state";
import type { RenderInput, Renderer } from "./types";

export const NOTIFY_SCRIPT_PATH = "/etc/edgepair/keepalived-notify.sh";
/** The agent creates and reads this FIFO; it should open it read-write, so it never sees end-of-file. */
export const VRRP_FIFO_PATH = "/run/edgepair/vrrp.fifo";
const RUN_DIR = "/run/edgepair";
const LOCK_FILE = `${RUN_DIR}/vrrp.lock`;
/** A hung conntrackd must not stall a failover forever; a commit of a full cache takes well under a second. */
const CONNTRACKD_TIMEOUT_S = 10;

export const renderNotifyScript: Renderer = (input) => [
  // keepalived's script security refuses scripts that anyone but root can write; 0700 also keeps it private.
  file(NOTIFY_SCRIPT_PATH, notifyScript(input), NO_RELOAD, 0o700),
];

function notifyScript({ spec, host }: RenderInput): string {
  const handler = floatingIpHandler(spec, host);
  const addresses = (state: KeepalivedState) => handler.onTransition(state).map(shellLine);
  const handoff = (on: boolean) => handoffCommands(host, on).map(shellLine);
  const serviceArp = (on: boolean) => serviceArpCommands(spec, host, on).map(shellLine);
  const conntrackd = (flag: string, why: string) =>
    `\tstep timeout ${CONNTRACKD_TIMEOUT_S} conntrackd ${flag} # ${why}`;
  const release = "purge stale forwarded flows after PurgeTimeout";
  // logged once the addresses are in place: a log line before the move would delay it
  const entered = '\tlog "entered $state (priority $priority)"';
  return lines(
    "#!/bin/sh",
    header("#").trimEnd(),
    `# keepalived runs it as: ${NOTIFY_SCRIPT_PATH} TYPE NAME STATE PRIORITY`,
    "",
    // keepalived's environment may lack the sbin directories; an inherited PATH still comes first.
    'PATH="${PATH:+$PATH:}/usr/sbin:/usr/bin:/sbin:/bin"',
    "export PATH",
    "",
    'state="${3:-}"',
    'priority="${4:-0}"',
    '[ "$state" = DELETED ] && state=STOP # the instance left the configuration: release like a stop',
    "",
    "log() {",
    "\tif command -v logger >/dev/null 2>&1; then",
    '\t\tlogger -t edgepair-notify -- "$*"',
    "\tfi",
    "}",
    "",
    "# One step of a transition. A failing step is logged and the transition goes on: stopping half-way leaves the",
    "# pair in a worse state than a logged failure does.",
    "step() {",
    '\tif ! out=$("$@" 2>&1); then',
    '\t\tlog "failed: $* ($out)"',
    "\tfi",
    "}",
    "",
    "# Announcements wait between packets, so they run in the background, without the lock (fd 9).",
    "announce() {",
    '\t("$@" >/dev/null 2>&1 || log "failed: $*") 9>&- &',
    "}",
    "",
    ...vipCheck(spec.derived.privateVips[0], host.privateInterface.name),
    "",
    `[ -d ${RUN_DIR} ] || mkdir -p ${RUN_DIR}`,
    "if command -v flock >/dev/null 2>&1; then",
    `\texec 9>${LOCK_FILE}`,
    "\tflock 9",
    "fi",
    'if [ "$state" = MASTER ]; then wanted=held; else wanted=released; fi',
    'if [ "$wanted" != "$(keepalived_vip)" ]; then',
    '\tlog "skipping $state: keepalived has moved on"',
    "\texit 0",
    "fi",
    "",
    'case "$state" in',
    "MASTER)",
    ...handoff(true),
    conntrackd("-c", "commit the peer's flows into the kernel table"),
    ...serviceArp(true),
    ...addresses("MASTER"),
    entered,
    conntrackd("-f", "flush the internal and external caches"),
    conntrackd("-R", "refill the internal cache from the kernel table"),
    conntrackd("-B", "send the flows this LB now owns to the peer"),
    "\t;;",
    "BACKUP)",
    ...addresses("BACKUP"),
    ...serviceArp(false),
    ...handoff(false),
    entered,
    conntrackd("-t", release),
    conntrackd("-n", "ask the master for all its flows"),
    "\t;;",
    "FAULT)",
    ...addresses("FAULT"),
    ...serviceArp(false),
    ...handoff(false),
    entered,
    conntrackd("-t", release),
    "\t;;",
    "STOP)",
    ...addresses("STOP"),
    ...serviceArp(false),
    ...handoff(false),
    entered,
    conntrackd("-t", release),
    "\t;;",
    "*)",
    "\tlog \"unknown state '$state' (arguments: $*)\"",
    "\texit 2",
    "\t;;",
    "esac",
    "",
    "# O_NONBLOCK: opening a FIFO without a reader fails at once (ENXIO) instead of hanging the transition.",
    `if [ -p ${VRRP_FIFO_PATH} ]; then`,
    `\tprintf '%s %s\\n' "$state" "$priority" | dd of=${VRRP_FIFO_PATH} oflag=nonblock status=none 2>/dev/null ||`,
    '\t\tlog "agent not listening on the FIFO"',
    "fi",
    "exit 0",
  );
}

/** `keepalived_vip` prints "held" or "released": whether keepalived's first VIP is on the private NIC now. */
function vipCheck(vip: VirtualAddress | undefined, dev: string): string[] {
  if (!vip) {
    return [
      "# This spec gives keepalived no VIP to consult: every copy trusts the state it was called with.",
      "keepalived_vip() {",
      '\tif [ "$state" = MASTER ]; then echo held; else echo released; fi',
      "}",
    ];
  }
  return [
    "keepalived_vip() {",
    `\tif [ -n "$(ip -o -${vip.family} addr show dev ${dev} to ${vip.address}/${hostPrefix(vip)} 2>/dev/null)" ]; then`,
    "\t\techo held",
    "\telse",
    "\t\techo released",
    "\tfi",
    "}",
  ];
}

function shellLine(command: Command): string {
  const words = command.map(shellWord).join(" ");
  return isAnnouncement(command) ? `\tannounce ${words}` : `\tstep ${words}`;
}

/** Quotes one argv word for sh; plain words (addresses, names, flags) stay readable. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
