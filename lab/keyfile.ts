/**
 * The lab stands in for NetworkManager: it reads the rendered keyfiles (never a second address list) and turns
 * each profile into `ip` commands for the link it matches, by interface-name or by MAC address, as NM would.
 */

export interface Keyfile {
  sections: Map<string, Map<string, string>>;
}

export function parseKeyfile(text: string): Keyfile {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1] as string, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (eq < 0 || !current) throw new Error(`keyfile: cannot read line "${line}"`);
    current.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return { sections };
}

export interface ProfileIntent {
  id: string;
  type: string;
  zone?: string;
  /** how the profile picks its device */
  match: { interfaceName: string } | { mac: string };
  ipv4: { addresses: string[]; gateway?: string; neverDefault: boolean; method: string };
  ipv6: { addresses: string[]; gateway?: string; method: string };
}

function numberedAddresses(section: Map<string, string> | undefined): string[] {
  // addressN=ADDR/LEN[,GATEWAY]
  return numberedKeys(section, "address").map(([, v]) => (v.split(",")[0] as string).trim());
}

function numberedKeys(section: Map<string, string> | undefined, key: string): [number, string][] {
  if (!section) return [];
  const re = new RegExp(`^${key}(\\d+)$`);
  return [...section.entries()]
    .map(([k, v]): [number, string] | undefined => {
      const m = re.exec(k);
      return m ? [Number(m[1]), v] : undefined;
    })
    .filter((x): x is [number, string] => x !== undefined)
    .sort(([a], [b]) => a - b);
}

export function profileIntent(text: string): ProfileIntent {
  const k = parseKeyfile(text);
  const conn = k.sections.get("connection");
  const id = conn?.get("id");
  const type = conn?.get("type");
  if (!conn || !id || !type) throw new Error("keyfile: [connection] needs id and type");
  const ifname = conn.get("interface-name");
  const mac = k.sections.get("ethernet")?.get("mac-address");
  const match = ifname ? { interfaceName: ifname } : mac ? { mac: mac.toLowerCase() } : undefined;
  if (!match)
    throw new Error(
      `keyfile ${id}: neither interface-name nor ethernet.mac-address: NetworkManager would not know its device`,
    );
  const v4 = k.sections.get("ipv4");
  const v6 = k.sections.get("ipv6");
  const zone = conn.get("zone");
  const gw4 = v4?.get("gateway");
  const gw6 = v6?.get("gateway");
  return {
    id,
    type,
    ...(zone ? { zone } : {}),
    match,
    ipv4: {
      method: v4?.get("method") ?? "auto",
      addresses: numberedAddresses(v4),
      ...(gw4 ? { gateway: gw4 } : {}),
      neverDefault: v4?.get("never-default") === "true",
    },
    ipv6: { method: v6?.get("method") ?? "auto", addresses: numberedAddresses(v6), ...(gw6 ? { gateway: gw6 } : {}) },
  };
}

export interface LinkInfo {
  name: string;
  mac: string;
}

/** The device a profile applies to among the namespace's links, as NetworkManager matches it. */
export function deviceFor(p: ProfileIntent, links: readonly LinkInfo[]): string {
  const found =
    "interfaceName" in p.match
      ? links.find((l) => l.name === (p.match as { interfaceName: string }).interfaceName)
      : links.find((l) => l.mac.toLowerCase() === (p.match as { mac: string }).mac);
  if (!found) throw new Error(`keyfile ${p.id}: no link matches ${JSON.stringify(p.match)}`);
  return found.name;
}

/**
 * `ip` argument lists (without `ip -n NS`; no family option, so they also run in `ip -batch`, where the family
 * follows from the address) that bring the device to what the profile says.
 */
export function ipCommands(p: ProfileIntent, dev: string): string[][] {
  const cmds: string[][] = [["link", "set", dev, "up"]];
  if (p.ipv4.method === "manual") for (const a of p.ipv4.addresses) cmds.push(["addr", "replace", a, "dev", dev]);
  else if (p.ipv4.method !== "disabled")
    throw new Error(`keyfile ${p.id}: ipv4.method ${p.ipv4.method} is not supported by the lab`);
  // ipv6.method=disabled: disable_ipv6 on the device (sysctlsFor), which removes every IPv6 address
  if (p.ipv6.method === "manual")
    for (const a of p.ipv6.addresses) cmds.push(["addr", "replace", a, "dev", dev, "nodad"]);
  if (p.ipv4.gateway && !p.ipv4.neverDefault)
    cmds.push(["route", "replace", "default", "via", p.ipv4.gateway, "dev", dev]);
  if (p.ipv6.gateway) cmds.push(["route", "replace", "default", "via", p.ipv6.gateway, "dev", dev]);
  return cmds;
}

/** sysctl keys NetworkManager sets for ipv6.method=disabled (it writes disable_ipv6 on the device). */
export function sysctlsFor(p: ProfileIntent, dev: string): [string, string][] {
  return p.ipv6.method === "disabled" ? [[`net.ipv6.conf.${dev}.disable_ipv6`, "1"]] : [];
}
