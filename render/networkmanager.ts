/**
 * NetworkManager keyfiles for the NICs (public, private and, with a syncNetwork, the sync link; matched by MAC, so a renamed interface keeps its profile) and the dummy
 * link holding the addresses both LBs treat as their own (handoff.ts: routed floating IPs and every frontend VIP). Each profile binds its NIC to a firewalld
 * zone (connection.zone): NM hands the binding to firewalld on activation and on every reapply.
 */
import { createHash } from "node:crypto";
import { FLOATING_IP_INTERFACE, type HostFacts, type ResolvedSpec, type VirtualAddress } from "../spec/types";
import { file, header, hostPrefix, lines, reload, ownAndPeer } from "./common";
import { sharedLocalAddresses } from "./handoff";
import { peerLink } from "./peer-link";
import type { ReloadAction, RenderedFile, Renderer } from "./types";

export const NM_CONNECTIONS_DIR = "/etc/NetworkManager/system-connections";
export const NM_KEYFILE_MODE = 0o600; // NM ignores keyfiles readable by others

export const PUBLIC_CONNECTION = "edgepair-public";
export const PRIVATE_CONNECTION = "edgepair-private";
export const FIP_CONNECTION = "edgepair-fip";
export const SYNC_CONNECTION = "edgepair-sync";

export const ZONE_EXTERNAL = "external";
export const ZONE_INTERNAL = "internal";
export const ZONE_SYNC = "edgepair-sync";

/** Above the 0 of generated "Wired connection N" profiles, so ours win autoconnect on a NIC. */
const AUTOCONNECT_PRIORITY = 100;

/**
 * Applies a loaded profile to its device without dropping addresses NetworkManager did not add (keepalived's VIPs).
 * Measured with NM 1.42.4 in a network namespace:
 * - `nmcli connection reload`/`load` only re-read files; the running device keeps its old settings.
 * - `nmcli device reapply IFACE` calls Reapply with flags 0 and removes every external address (the VRRP VIPs go).
 * - `nmcli connection up` re-activates and flushes them as well.
 * - D-Bus Device.Reapply with flag 0x1 (NM_DEVICE_REAPPLY_FLAGS_PRESERVE_EXTERNAL_IP, NM >= 1.42) applies new
 *   addresses, gateway and zone and keeps external IPv4 addresses. External IPv6 addresses survive only when NM
 *   does not manage IPv6 on that device (method ignore/disabled): when it does, restarting IPv6 toggles
 *   disable_ipv6, which empties the interface of all IPv6 addresses.
 * A profile not yet active anywhere (first boot, or the dummy link not created yet) is brought up instead; at that
 * point keepalived holds nothing on the device. A profile active on another device than the host facts name is an
 * error, never a re-activation.
 * Arguments: $1 interface name, $2 profile UUID.
 */
export const NM_APPLY_SCRIPT = [
  "set -eu",
  "iface=$1 uuid=$2",
  'on=$(nmcli -g GENERAL.DEVICES connection show uuid "$uuid")',
  'case "$on" in',
  '  "") exec nmcli connection up uuid "$uuid" ;;',
  '  "$iface") exec busctl call org.freedesktop.NetworkManager "$(nmcli -g GENERAL.DBUS-PATH device show "$iface")" \\',
  "    org.freedesktop.NetworkManager.Device Reapply 'a{sa{sv}}tu' 0 0 1 ;;",
  '  *) echo "edgepair: profile $uuid is active on $on, not on $iface" >&2; exit 1 ;;',
  "esac",
].join("\n");

type KeyfileSection = [name: string, entries: [key: string, value: string | number | boolean][]];

export const renderNetworkManager: Renderer = ({ spec, host }) => {
  return [publicProfile(spec, host), privateProfile(spec, host), ...syncProfile(spec, host), floatingIpProfile(spec)];
};

function publicProfile(spec: ResolvedSpec, host: HostFacts): RenderedFile {
  const net = spec.platform.publicNetwork;
  const own = ownAndPeer(net.lbAddresses, host).own;
  const isV6 = own.includes(":");
  const staticSection: KeyfileSection[1] = [
    ["method", "manual"],
    ["address1", `${own}/${net.prefixLength}`],
    ["gateway", net.gateway],
  ];
  // IPv4 public network: NM leaves IPv6 to the kernel (method ignore). The kernel's SLAAC uses EUI-64, the address
  // Neutron's port security expects, and accepts RAs with accept_ra=2 (sysctl.ts); above all, NM never restarts
  // IPv6 on a reapply, so keepalived's public IPv6 VIPs on this NIC survive a profile change.
  const ipv4: KeyfileSection[1] = isV6 ? [["method", "disabled"]] : staticSection;
  const ipv6: KeyfileSection[1] = isV6 ? [...staticSection, ["addr-gen-mode", "eui64"]] : [["method", "ignore"]];
  return profile(spec, PUBLIC_CONNECTION, host.publicInterface.name, [
    ["connection", [...connectionKeys(spec, PUBLIC_CONNECTION, "ethernet"), ["zone", ZONE_EXTERNAL]]],
    ["ethernet", [["mac-address", host.publicInterface.mac.toLowerCase()]]],
    ["ipv4", ipv4],
    ["ipv6", ipv6],
    userSection(),
  ]);
}

function privateProfile(spec: ResolvedSpec, host: HostFacts): RenderedFile {
  const own = ownAndPeer(spec.network.lbAddresses, host).own;
  return profile(spec, PRIVATE_CONNECTION, host.privateInterface.name, [
    ["connection", [...connectionKeys(spec, PRIVATE_CONNECTION, "ethernet"), ["zone", ZONE_INTERNAL]]],
    ["ethernet", [["mac-address", host.privateInterface.mac.toLowerCase()]]],
    [
      "ipv4",
      [
        ["method", "manual"],
        ["address1", `${own}/${spec.network.prefixLength}`],
        // The cluster network's gateway is our own VIP: the default route stays on the public NIC.
        ["never-default", true],
      ],
    ],
    // The cluster network is IPv4 (the spec enforces it); no RA from a cluster node can add routes here.
    ["ipv6", [["method", "disabled"]]],
    userSection(),
  ]);
}

/** The sync link (peer-link.ts): an address and nothing else; no route leaves through it. */
function syncProfile(spec: ResolvedSpec, host: HostFacts): RenderedFile[] {
  const sync = spec.syncNetwork;
  if (!sync) return [];
  const link = peerLink(spec, host);
  const nic = host.syncInterface!; // peerLink refused facts without it
  return [
    profile(spec, SYNC_CONNECTION, link.interface, [
      ["connection", [...connectionKeys(spec, SYNC_CONNECTION, "ethernet"), ["zone", ZONE_SYNC]]],
      ["ethernet", [["mac-address", nic.mac.toLowerCase()]]],
      [
        "ipv4",
        [
          ["method", "manual"],
          ["address1", `${link.own}/${sync.prefixLength}`],
          ["never-default", true],
        ],
      ],
      ["ipv6", [["method", "disabled"]]],
      userSection(),
    ]),
  ];
}

function floatingIpProfile(spec: ResolvedSpec): RenderedFile {
  const vips = (family: 4 | 6): KeyfileSection[1] => {
    const mine = sharedLocalAddresses(spec).filter((v) => v.family === family);
    if (mine.length === 0) return [["method", "disabled"]];
    return [["method", "manual"], ...mine.map((v, i): [string, string] => [`address${i + 1}`, hostAddress(v)])];
  };
  return profile(spec, FIP_CONNECTION, FLOATING_IP_INTERFACE, [
    [
      "connection",
      [
        ...connectionKeys(spec, FIP_CONNECTION, "dummy"),
        ["interface-name", FLOATING_IP_INTERFACE],
        ["zone", ZONE_EXTERNAL],
      ],
    ],
    ["ipv4", vips(4)],
    ["ipv6", vips(6)],
    userSection(),
  ]);
}

function profile(spec: ResolvedSpec, id: string, iface: string, sections: KeyfileSection[]): RenderedFile {
  const path = `${NM_CONNECTIONS_DIR}/${id}.nmconnection`;
  const body = sections.map(([name, entries]) => [`[${name}]`, ...entries.map(([k, v]) => `${k}=${String(v)}`), ""]);
  return file(path, lines(header("#"), ...body), nmReload(path, iface, profileUuid(spec, id)), NM_KEYFILE_MODE);
}

export function nmReload(path: string, iface: string, uuid: string): ReloadAction {
  return reload(
    "networkmanager",
    ["nmcli", "connection", "load", path],
    ["sh", "-c", NM_APPLY_SCRIPT, "edgepair-nm-apply", iface, uuid],
  );
}

function connectionKeys(spec: ResolvedSpec, id: string, type: string): KeyfileSection[1] {
  return [
    ["id", id],
    ["uuid", profileUuid(spec, id)],
    ["type", type],
    ["autoconnect-priority", AUTOCONNECT_PRIORITY],
  ];
}

function userSection(): KeyfileSection {
  return ["user", [["org.freedesktop.NetworkManager.origin", "edgepair"]]];
}

/** Stable across renders (NM keys profiles by UUID; a new UUID per render would be a new profile each time). */
export function profileUuid(spec: ResolvedSpec, id: string): string {
  const h = createHash("sha1").update(`edgepair/${spec.clusterName}/${id}`).digest("hex");
  // RFC 4122 layout, version 5 and variant bits set, as uuidgen --sha1 would.
  const variant = ((parseInt(h.slice(16, 18), 16) & 0x3f) | 0x80).toString(16).padStart(2, "0");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(18, 20)}-${h.slice(20, 32)}`;
}

function hostAddress(v: VirtualAddress): string {
  return `${v.address}/${hostPrefix(v)}`;
}
