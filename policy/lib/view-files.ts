/**
 * Readers for the files a RenderedView carries (what the agent will write on the LB): keepalived.conf,
 * NetworkManager keyfiles and firewalld zones. They read the rendered text, not the spec, so a policy judges what
 * will really run, whoever composed it. Each reader is tolerant: what it cannot parse it leaves out, and the
 * policy names the file when a required part is missing.
 */
import { childrenOf, parseXml, type XNode, child } from "../../providers/libvirt/xml";
import { addressPart } from "./addresses";
import { isRecord, known, str } from "./values";
import { VIEW_FILES } from "./types";

/** path -> content of every file whose content is known. */
export function viewFiles(props: unknown): Map<string, string> {
  const out = new Map<string, string>();
  const files = known(() => (isRecord(props) ? props.files : undefined));
  if (!isRecord(files)) return out;
  for (const path of Object.keys(files)) {
    const content = str(
      known(() => files[path]),
      "content",
    );
    if (content !== undefined) out.set(path, content);
  }
  return out;
}

/** keepalived.conf: the global VRRP version and every vrrp_instance's advert_int (undefined when absent). */
export interface KeepalivedFacts {
  vrrpVersion?: number;
  instances: { name: string; advertInt?: number }[];
  /** Addresses of every virtual_ipaddress block. */
  virtualAddresses: string[];
}

export function readKeepalived(text: string): KeepalivedFacts {
  const facts: KeepalivedFacts = { instances: [], virtualAddresses: [] };
  // keepalived's syntax is blocks of "keyword args {" ... "}"; a stack of open block keywords tells where a line is.
  const stack: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#!].*$/, "").trim();
    if (line === "") continue;
    const words = line.split(/\s+/);
    const keyword = words[0] ?? "";
    if (line.endsWith("{")) {
      stack.push(keyword);
      if (keyword === "vrrp_instance") facts.instances.push({ name: words[1] ?? "" });
      continue;
    }
    if (line === "}") {
      stack.pop();
      continue;
    }
    const top = stack[stack.length - 1];
    if (top === "global_defs" && keyword === "vrrp_version") facts.vrrpVersion = Number(words[1]);
    if (top === "vrrp_instance" && keyword === "advert_int") {
      const current = facts.instances[facts.instances.length - 1];
      if (current) current.advertInt = Number(words[1]);
    }
    if (top === "virtual_ipaddress") facts.virtualAddresses.push(addressPart(keyword));
  }
  return facts;
}

/** One NetworkManager keyfile: its id, type, firewalld zone and addresses. */
export interface NmConnection {
  path: string;
  id: string;
  type: string;
  zone?: string;
  addresses: string[];
}

export function readNmConnection(path: string, text: string): NmConnection {
  const conn: NmConnection = { path, id: "", type: "", addresses: [] };
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1] ?? "";
      continue;
    }
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (section === "connection" && key === "id") conn.id = value;
    if (section === "connection" && key === "type") conn.type = value;
    if (section === "connection" && key === "zone") conn.zone = value;
    if ((section === "ipv4" || section === "ipv6") && /^address\d+$/.test(key))
      conn.addresses.push(addressPart(value.split(",")[0] ?? ""));
  }
  return conn;
}

export function nmConnections(files: Map<string, string>): NmConnection[] {
  return [...files]
    .filter(([p]) => p.startsWith(VIEW_FILES.nmDir) && p.endsWith(".nmconnection"))
    .map(([p, t]) => readNmConnection(p, t));
}

/** A port or port range of a firewalld element, with its protocol. */
export interface FwPort {
  from: number;
  to: number;
  protocol: string;
}

export interface FwRichRule {
  source?: string;
  /** firewalld's `invert="true"`: the rule applies to everything except the source. */
  sourceInverted: boolean;
  destination?: string;
  destinationInverted: boolean;
  services: string[];
  ports: FwPort[];
  action?: "accept" | "reject" | "drop" | "mark";
}

export interface FwZone {
  path: string;
  name: string;
  target?: string;
  services: string[];
  ports: FwPort[];
  rules: FwRichRule[];
}

function portOf(node: XNode): FwPort | undefined {
  const [a, b] = (node.attrs.port ?? "").split("-");
  const from = Number(a);
  const to = b === undefined ? from : Number(b);
  if (!Number.isInteger(from) || !Number.isInteger(to)) return undefined;
  return { from, to, protocol: node.attrs.protocol ?? "" };
}

/** A zone file; throws when it is not XML (the policy reports the file). */
export function readZone(path: string, text: string): FwZone {
  const root = parseXml(text);
  const name = (path.split("/").pop() ?? path).replace(/\.xml$/, "");
  const rule = (r: XNode): FwRichRule => {
    const source = child(r, "source");
    const destination = child(r, "destination");
    const action = (["accept", "reject", "drop", "mark"] as const).find((a) => child(r, a) !== undefined);
    return {
      ...(source?.attrs.address ? { source: source.attrs.address } : {}),
      sourceInverted: source?.attrs.invert === "true" || source?.attrs.invert === "yes",
      ...(destination?.attrs.address ? { destination: destination.attrs.address } : {}),
      destinationInverted: destination?.attrs.invert === "true" || destination?.attrs.invert === "yes",
      services: childrenOf(r, "service").map((s) => s.attrs.name ?? ""),
      ports: childrenOf(r, "port").flatMap((p) => portOf(p) ?? []),
      ...(action ? { action } : {}),
    };
  };
  return {
    path,
    name,
    ...(root.attrs.target ? { target: root.attrs.target } : {}),
    services: childrenOf(root, "service").map((s) => s.attrs.name ?? ""),
    ports: childrenOf(root, "port").flatMap((p) => portOf(p) ?? []),
    rules: childrenOf(root, "rule").map(rule),
  };
}

export function zoneFiles(files: Map<string, string>): [string, string][] {
  return [...files].filter(([p]) => p.startsWith(VIEW_FILES.firewalldZones) && p.endsWith(".xml"));
}
