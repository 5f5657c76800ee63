/**
 * Every service of an LB in one table: its systemd unit, the rendered files it reads, the program that checks them on
 * the VM before they go live, whether a change can break serving, its place in the bootstrap order and the lab's
 * processes for it. Renderers name each file's service (`reload()` in common.ts); the agent's rollout classification
 * (agent/changes.ts), validation (agent/apply/validate.ts) and bootstrap (agent/services.ts), the VRRP quiet period
 * around a firewalld reload (agent/run.ts) and the lab read the rest from here, so a new daemon is one entry (and its
 * renderer).
 */
import { SERVICES_NFT_PATH } from "./service-lb";
import type { ServiceName } from "./types";

/** How the agent checks a candidate file on the VM (agent/apply/validate.ts runs it). */
export type VmCheck =
  /** one program per file; exit 0 accepts */
  | { kind: "argv"; checker: string; argv: (staged: string) => string[] }
  /** nmcli parses a keyfile given on stdin, without a daemon */
  | { kind: "nmcli"; checker: string }
  /** firewall-offline-cmd cross-checks zones and policies: the whole directory at once */
  | { kind: "firewalld"; checker: string }
  /** applying a sysctl file would change the live kernel: every key is looked up under /proc/sys instead */
  | { kind: "sysctl"; checker: string }
  /** no safe check exists on a running LB; the file goes live unchecked, and the verdict says so */
  | { kind: "none"; checker: string };

export interface ServiceSpec {
  /** the systemd unit (absent: no daemon of ours; a command applies the files) */
  unit?: string;
  /** the rendered files this service reads; every rendered file belongs to exactly one service */
  owns: (path: string) => boolean;
  check: VmCheck;
  /** a change can break serving (VIPs, ports, firewall, addressing): BACKUP first, health-gated (agent/changes.ts);
   *  haproxy.cfg changed only in its server lines goes through the runtime API instead */
  risky: boolean;
  /** its reload drops new packets for seconds: keepalived stays quiet around it (agent/run.ts) */
  reloadStallsTraffic: boolean;
  /** bootstrap enables and starts the unit in this order (lower first): firewalld before anything binds, HAProxy
   *  before conntrackd, whose cache keepalived's notify commits, and keepalived last, so the LB advertises only once it
   *  serves and syncs. Absent: runs from the image (NetworkManager, the agent) or has no unit. */
  bootstrapOrder?: number;
  /** the lab's processes for this service (lab/lab.ts), in the order its status lists them */
  labProcesses: readonly string[];
}

const under =
  (dir: string, suffix = "") =>
  (p: string) =>
    p.startsWith(`${dir}/`) && p.endsWith(suffix);
const NOT_RENDERED = () => false;

/** In the order of an LB's layers: kernel and links, firewall, the daemons that bind on them. */
export const SERVICES: Readonly<Record<ServiceName, ServiceSpec>> = {
  sysctl: {
    owns: under("/etc/sysctl.d"),
    check: { kind: "sysctl", checker: "sysctl keys" },
    risky: true,
    reloadStallsTraffic: false,
    labProcesses: [],
  },
  networkmanager: {
    unit: "NetworkManager.service",
    owns: under("/etc/NetworkManager/system-connections", ".nmconnection"),
    check: { kind: "nmcli", checker: "nmcli --offline" },
    risky: true,
    reloadStallsTraffic: false,
    labProcesses: [],
  },
  nftables: {
    owns: (p) => under("/etc/edgepair", ".nft")(p) && p !== SERVICES_NFT_PATH,
    check: { kind: "argv", checker: "nft -c", argv: (f) => ["nft", "-c", "-f", f] },
    risky: true,
    reloadStallsTraffic: false,
    labProcesses: [],
  },
  // Service frontends forwarded by the kernel (service-lb.ts): one atomic table swap; established flows keep their
  // translation in conntrack, and a new or changed frontend moves no VIP and touches no other Service
  serviceLb: {
    owns: (p) => p === SERVICES_NFT_PATH,
    check: { kind: "argv", checker: "nft -c", argv: (f) => ["nft", "-c", "-f", f] },
    risky: false,
    reloadStallsTraffic: false,
    labProcesses: [],
  },
  firewalld: {
    unit: "firewalld.service",
    owns: under("/etc/firewalld"),
    check: { kind: "firewalld", checker: "firewall-offline-cmd --check-config" },
    risky: true,
    // measured 1.7-4.8 s in the lab: every new client connection on the MASTER, and the peer's adverts
    reloadStallsTraffic: true,
    bootstrapOrder: 1,
    // firewalld needs a system bus; the VM has one anyway
    labProcesses: ["dbus", "firewalld"],
  },
  haproxy: {
    unit: "haproxy.service",
    owns: under("/etc/haproxy", ".cfg"),
    check: { kind: "argv", checker: "haproxy -c", argv: (f) => ["haproxy", "-c", "-f", f] },
    risky: true,
    reloadStallsTraffic: false,
    bootstrapOrder: 2,
    labProcesses: ["haproxy"],
  },
  conntrackd: {
    unit: "conntrackd.service",
    owns: under("/etc/conntrackd"),
    // its only check is running the daemon, which would collide with the running one (lock file) or, when it is
    // stopped, start syncing with the peer
    check: { kind: "none", checker: "none (conntrackd has no config test)" },
    risky: false,
    reloadStallsTraffic: false,
    bootstrapOrder: 3,
    labProcesses: ["conntrackd"],
  },
  agent: {
    unit: "edgepair-agent.service",
    owns: NOT_RENDERED,
    check: { kind: "none", checker: "none (renders nothing for itself)" },
    risky: false,
    reloadStallsTraffic: false,
    // the lab runs the agent's VRRP side only: the notify FIFO's reader
    labProcesses: ["vrrp-agent"],
  },
  keepalived: {
    unit: "keepalived.service",
    owns: under("/etc/keepalived", ".conf"),
    // -l: the verdict goes to the console (the report), not to syslog
    check: { kind: "argv", checker: "keepalived -t", argv: (f) => ["keepalived", "-t", "-l", "-f", f] },
    risky: true,
    reloadStallsTraffic: false,
    bootstrapOrder: 4,
    labProcesses: ["keepalived"],
  },
  // files read when used, never reloaded: keepalived's notify script
  none: {
    owns: under("/etc/edgepair", ".sh"),
    check: { kind: "argv", checker: "sh -n", argv: (f) => ["sh", "-n", f] },
    risky: false,
    reloadStallsTraffic: false,
    labProcesses: [],
  },
};

export const SERVICE_NAMES = Object.keys(SERVICES) as ServiceName[];

/** The service whose files live at `path`, or undefined for a path no service reads. */
export function serviceOfPath(path: string): ServiceName | undefined {
  return SERVICE_NAMES.find((s) => SERVICES[s].owns(path));
}

/** Units bootstrap starts, in their order. */
export const BOOTSTRAP_UNITS: readonly { service: ServiceName; unit: string }[] = SERVICE_NAMES.flatMap((service) => {
  const s = SERVICES[service];
  return s.bootstrapOrder !== undefined && s.unit ? [{ service, unit: s.unit, order: s.bootstrapOrder }] : [];
})
  .sort((a, b) => a.order - b.order)
  .map(({ service, unit }) => ({ service, unit }));
