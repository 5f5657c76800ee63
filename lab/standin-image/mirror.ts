/**
 * The Debian mirror the stand-in is built from: the one this machine's apt already uses (the only route to
 * Debian's packages here), read from /etc/apt/sources.list and sources.list.d (one-line and deb822 forms).
 * EDGEPAIR_STANDIN_MIRROR overrides it.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface DebianMirrors {
  /** Serves SUITE and SUITE-updates. */
  main: string;
  /** Serves SUITE-security, when the host has one. */
  security?: string;
}

interface SourceEntry {
  uri: string;
  suites: string[];
}

/** deb822 stanzas (.sources) and one-line entries (.list) of type deb. */
export function parseAptSources(text: string, deb822: boolean): SourceEntry[] {
  if (!deb822) {
    return text
      .split("\n")
      .map((l) => l.replace(/#.*/, "").trim())
      .map((l) => /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ uri: m[1] as string, suites: [m[2] as string] }));
  }
  return text
    .split(/\n\s*\n/)
    .map((stanza) => {
      const field = (name: string) =>
        new RegExp(`^${name}:\\s*(.+)$`, "mi").exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
      return { types: field("Types"), uris: field("URIs"), suites: field("Suites") };
    })
    .filter((s) => s.types.includes("deb") && s.uris.length > 0)
    .map((s) => ({ uri: s.uris[0] as string, suites: s.suites }));
}

export function findMirrors(suite: string, etcApt = "/etc/apt"): DebianMirrors {
  const entries: SourceEntry[] = [];
  const list = join(etcApt, "sources.list");
  if (existsSync(list)) entries.push(...parseAptSources(readFileSync(list, "utf8"), false));
  const dir = join(etcApt, "sources.list.d");
  if (existsSync(dir)) {
    for (const f of readdirSync(dir).sort()) {
      if (f.endsWith(".sources")) entries.push(...parseAptSources(readFileSync(join(dir, f), "utf8"), true));
      else if (f.endsWith(".list")) entries.push(...parseAptSources(readFileSync(join(dir, f), "utf8"), false));
    }
  }
  const override = process.env.EDGEPAIR_STANDIN_MIRROR;
  const main = override ?? entries.find((e) => e.suites.includes(suite))?.uri;
  if (!main)
    throw new Error(
      `no apt source serves Debian ${suite} in ${etcApt}; set EDGEPAIR_STANDIN_MIRROR to a Debian mirror URL`,
    );
  const security = entries.find((e) => e.suites.includes(`${suite}-security`))?.uri;
  return security
    ? { main: main.replace(/\/$/, ""), security: security.replace(/\/$/, "") }
    : { main: main.replace(/\/$/, "") };
}

/** The image's own apt sources (deb822), the same mirrors the build used. */
export function renderSources(suite: string, m: DebianMirrors): string {
  const stanza = (uri: string, suites: string) =>
    `Types: deb\nURIs: ${uri}\nSuites: ${suites}\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`;
  return [stanza(m.main, `${suite} ${suite}-updates`), m.security ? stanza(m.security, `${suite}-security`) : undefined]
    .filter((s): s is string => s !== undefined)
    .join("\n");
}
