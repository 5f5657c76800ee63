/**
 * /etc/keepalived/keepalived.conf: one VRRPv3 instance over unicast between the two LBs (peer-link.ts: on the
 * private NIC, or on the sync link when the spec has one). It holds the private VIPs (and the gateway VIP when NAT is on); public addresses move in the notify script,
 * after conntrackd's commit (render/notify.ts).
 *
 * HAProxy tracking is a vrrp_script, not vrrp_track_process: track_process listens on the kernel's process-event
 * connector, which exists only in the initial network namespace. In a network-namespace lab it is blind (checked
 * with keepalived 2.2.7: "Failed to set/clear process event listen", then FAULT forever when HAProxy started after
 * keepalived). The script asks HAProxy's own monitor URI on this LB's address, so it also notices a HAProxy that
 * runs but does not answer, and it sees only the HAProxy of its own network namespace.
 */
import { parseIp } from "../spec/address";
import type { HostFacts, IpFamily, ResolvedSpec, VirtualAddress } from "../spec/types";
import { file, header, hostPrefix, lines, reload, ownAndPeer } from "./common";
import { HAPROXY_MONITOR_URI } from "./haproxy";
import { NOTIFY_SCRIPT_PATH } from "./notify";
import { peerLink } from "./peer-link";
import type { Renderer } from "./types";

export const KEEPALIVED_CONFIG_PATH = "/etc/keepalived/keepalived.conf";
/** The curl of Fedora's curl-minimal (and Debian's curl) lives here; keepalived runs scripts without a shell. */
const CURL = "/usr/bin/curl";
const HAPROXY_CHECK = "haproxy";

export const renderKeepalived: Renderer = ({ spec, host }) => [
  file(
    KEEPALIVED_CONFIG_PATH,
    keepalivedConf(spec, host),
    reload("keepalived", ["systemctl", "reload", "keepalived.service"]),
  ),
];

/** The VRRP instance name: the cluster name, restricted to characters keepalived takes in a bare word. */
export function vrrpInstanceName(clusterName: string): string {
  return clusterName.replace(/[^A-Za-z0-9_.-]/g, "_");
}

function keepalivedConf(spec: ResolvedSpec, host: HostFacts): string {
  const link = peerLink(spec, host);
  const privateIf = host.privateInterface.name;
  // HAProxy's check asks this LB's own private address: HAProxy binds there, never on the sync link.
  const { own } = ownAndPeer(spec.network.lbAddresses, host);
  // VRRPv3 adverts carry addresses of one family only (the family of the unicast addresses); the other family's
  // VIPs are excluded from adverts but still move with the instance.
  if (spec.derived.privateVips.length === 0) {
    // keepalived refuses an instance without VIPs ("No VIP specified; at least one is required"); the spec rules
    // should reject this first, so reaching here is a bug, never a silently broken file.
    throw new Error(
      "virtualAddresses: needs a private address or nat (keepalived's VRRP instance needs at least one VIP)",
    );
  }
  const advertFamily = familyOf(link.own);
  const advertised = spec.derived.privateVips.filter((v) => v.family === advertFamily);
  const excluded = spec.derived.privateVips.filter((v) => v.family !== advertFamily);
  return lines(
    header("#").trimEnd(),
    "",
    "global_defs {",
    `    router_id ${host.hostname}`,
    "    vrrp_version 3",
    // Scripts run as root (they change addresses), so keepalived must refuse any that others could modify.
    "    enable_script_security",
    "    script_user root",
    // The first GARP burst goes out at once; a second one a second later covers a switch that missed it, and a
    // periodic refresh keeps caches warm while nothing moves (the default of 5 s waits too long).
    "    vrrp_garp_master_delay 1",
    "    vrrp_garp_master_refresh 60",
    // With adverts every 40 ms a busy HAProxy must not delay them into a false failover, so the VRRP process gets
    // a higher CFS weight. Not realtime: under SCHED_RR keepalived 2.2.7's VRRP child was SIGKILLed by its own
    // RLIMIT_RTTIME (10 ms) on entering BACKUP here, and respawned; -1 also keeps it from raising itself to realtime.
    "    vrrp_priority -10",
    "    max_auto_priority -1",
    "}",
    "",
    // A check that cannot run is not a dead HAProxy. On a VM whose vCPUs the host runs only now and then (TCG under
    // load), curl takes seconds just to start: keepalived's `timeout` is generous and kills a check that overruns it
    // (a failure); curl's own --max-time bounds only the HTTP exchange with HAProxy. A FAULT takes three failures in
    // a row. keepalived 2.2.7 starts a check every `interval` even while earlier ones run: a dead HAProxy (refused at
    // once) is a FAULT after ~2.6 s, a hung one (it accepts, never answers) after ~5.5 s; a keepalived that runs one
    // check at a time takes ~12 s for the hung one. Checks that each take under 10 s (8 s tested) are no FAULT
    // (test/render-vrrp.test.ts). The first times (curl 1 s, timeout 2, fall 2) made false failovers on the e2e's
    // loaded TCG VMs.
    `vrrp_script ${HAPROXY_CHECK} {`,
    `    script "${CURL} -fsS -o /dev/null --max-time 3 ${monitorUrl(own, spec.metrics.port)}"`,
    "    interval 1",
    "    timeout 10",
    "    fall 3",
    "    rise 2",
    // weight 0: a failing HAProxy puts the instance in FAULT, so the peer takes over whatever the priorities are.
    "    weight 0",
    // At boot the LB counts as failed until HAProxy answers, so it never wins an election without a proxy.
    "    init_fail",
    "}",
    "",
    `vrrp_instance ${vrrpInstanceName(spec.clusterName)} {`,
    // BACKUP on both plus nopreempt: a returning LB stays BACKUP instead of taking over (and dropping flows) again.
    "    state BACKUP",
    "    nopreempt",
    `    interface ${link.interface}`,
    `    virtual_router_id ${spec.vrrp.routerId}`,
    `    priority ${spec.vrrp.priority[host.role]}`,
    `    advert_int ${spec.vrrp.advertIntervalSeconds}`,
    `    unicast_src_ip ${link.own}`,
    "    unicast_peer {",
    `        ${link.peer}`,
    "    }",
    // Adverts are accepted only from the peer's address, never from another host that guessed the router ID.
    "    check_unicast_src",
    ...vipBlock("virtual_ipaddress", advertised, privateIf),
    ...vipBlock("virtual_ipaddress_excluded", excluded, privateIf),
    // The instance's own NIC is tracked implicitly (keepalived rejects naming it); losing the public one, or the
    // private one when adverts go over the sync link, is a FAULT too.
    "    track_interface {",
    `        ${host.publicInterface.name}`,
    ...(link.dedicated ? [`        ${privateIf}`] : []),
    "    }",
    "    track_script {",
    `        ${HAPROXY_CHECK}`,
    "    }",
    `    notify ${NOTIFY_SCRIPT_PATH}`,
    "}",
  );
}

function vipBlock(keyword: string, vips: VirtualAddress[], dev: string): string[] {
  if (vips.length === 0) return [];
  return [`    ${keyword} {`, ...vips.map((v) => `        ${v.address}/${hostPrefix(v)} dev ${dev}`), "    }"];
}

function monitorUrl(address: string, port: number): string {
  const hostPart = familyOf(address) === 6 ? `[${address}]` : address;
  return `http://${hostPart}:${port}${HAPROXY_MONITOR_URI}`;
}

function familyOf(address: string): IpFamily {
  const ip = parseIp(address);
  if (!ip) throw new Error(`not an IP address: ${address}`);
  return ip.kind() === "ipv4" ? 4 : 6;
}
