/**
 * Generated specs through validate and render (issue 18 item 4, fast-check): every spec the validator accepts must
 * render files that every real checker accepts (haproxy -c, keepalived -t in a netns, a conntrackd run, nft -c,
 * nmcli --offline, firewall-offline-cmd, sysctl -p, shellcheck: test/checkers/all.ts), for both LBs; every spec it
 * refuses gets `<field.path>: <rule>` lines, never an exception. The generator starts from the dev spec and varies
 * what users write, hostile values included (odd addresses, ports that collide, characters HAProxy interprets).
 * Bounded: a fixed seed, 80 specs, at most 24 of them rendered and checked (a tree's checks take ~1-2 s). Needs root
 * (keepalived -t and the conntrackd run use network namespaces).
 */
import fc from "fast-check";
import { readHost } from "../spec/files";
import { resolveBackends } from "../spec/backend-list";
import { renderAll } from "../render";
import { formatProblem } from "../spec/errors";
import { validateSpec } from "../spec/resolve";
import { checkRenderedTree } from "./checkers/all";
import { devSpecRaw, REPO } from "./fixtures/variants";

jest.setTimeout(600_000);
const suite = process.getuid?.() === 0 ? describe : describe.skip;

type Raw = Record<string, any>; // test-only: the generator writes arbitrary shapes

const hostAddress = fc.integer({ min: 1, max: 254 }).map((i) => `192.168.100.${i}`);
const odd = fc.constantFrom(
  "0.0.0.0",
  "127.0.0.1",
  "224.0.0.18",
  "255.255.255.255",
  "192.168.100.0",
  "192.168.100.255",
  "fe80::1",
  "::",
  "169.254.169.254",
);
// hostile values now and then, so that about half the specs are accepted and rendered
const privateAddress = fc.oneof({ weight: 30, arbitrary: hostAddress }, { weight: 1, arbitrary: odd });
const publicV4 = fc.integer({ min: 1, max: 254 }).map((i) => `198.51.100.${i}`);
const publicAddress = fc.oneof(
  { weight: 24, arbitrary: publicV4 },
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 0xfff }).map((i) => `2001:db8:100::${i.toString(16)}`) },
  { weight: 1, arbitrary: odd },
);
const vip = fc.oneof(
  fc.record({ address: privateAddress, type: fc.constant("private") }),
  fc.record({ address: publicAddress, type: fc.constant("public") }),
);
const port = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom(22, 80, 443, 1936, 3780, 6443, 8404, 22623, 30080, 30443) },
  { weight: 4, arbitrary: fc.integer({ min: 1024, max: 65535 }) },
);
const pathChars = fc.constantFrom(..."abz09/-._~?&=%+!*()[]:@\"'#$\\{} ".split(""));
const cleanChars = fc.constantFrom(..."abz09/-._~?&=%+!*()[]:@".split(""));
const healthPath = fc.oneof(
  { weight: 2, arbitrary: fc.constant("") },
  { weight: 6, arbitrary: fc.string({ unit: cleanChars, maxLength: 20 }).map((s) => `/${s}`) },
  { weight: 1, arbitrary: fc.string({ unit: pathChars, maxLength: 20 }).map((s) => `/${s}`) },
  { weight: 1, arbitrary: fc.string({ unit: pathChars, maxLength: 10 }) },
);

const knobs = fc.record(
  {
    distribution: fc.constantFrom("openshift", "talos", "generic"),
    gateway: hostAddress,
    lbAddresses: fc.tuple(hostAddress, hostAddress),
    api: fc.array(vip, { minLength: 1, maxLength: 3 }),
    ingress: fc.option(fc.array(vip, { minLength: 1, maxLength: 2 }), { nil: undefined }),
    nat: fc.option(
      fc.record({
        address: fc.oneof({ weight: 8, arbitrary: publicV4 }, { weight: 1, arbitrary: publicAddress }),
        type: fc.constantFrom("public", "public", "public", "private"),
      }),
      { nil: undefined },
    ),
    apiAddresses: fc.array(privateAddress, { minLength: 1, maxLength: 4 }),
    ingressAddresses: fc.array(privateAddress, { maxLength: 3 }),
    httpPort: port,
    httpsPort: port,
    healthPort: port,
    healthPath,
    proxyProtocol: fc.boolean(),
    metricsPort: port,
    conntrackPort: port,
    advertInterval: fc.constantFrom(0.01, 0.1, 0.15, 1, 3, 40.95, 0.1, 1, 0.015),
    routerId: fc.integer({ min: 1, max: 255 }),
    nextHop: fc.integer({ min: 2, max: 254 }).map((i) => `172.31.250.${i}`),
  },
  // each knob present or left to its default
  { requiredKeys: ["distribution", "api"] },
);

type Knobs = typeof knobs extends fc.Arbitrary<infer T> ? T : never;

function specOf(k: Knobs): Raw {
  const s = devSpecRaw() as Raw;
  s.distribution = k.distribution;
  if (k.gateway !== undefined) s.network.gateway = k.gateway;
  if (k.lbAddresses !== undefined) s.network.lbAddresses = k.lbAddresses;
  s.virtualAddresses = { api: k.api, ...(k.ingress ? { ingress: k.ingress } : {}), ...(k.nat ? { nat: k.nat } : {}) };
  if (k.apiAddresses !== undefined) s.apiBackend.addresses = k.apiAddresses;
  if (k.ingress) {
    s.ingressBackend = {
      ...s.ingressBackend,
      ...(k.ingressAddresses !== undefined ? { addresses: k.ingressAddresses } : {}),
      ...(k.httpPort !== undefined ? { httpPort: k.httpPort } : {}),
      ...(k.httpsPort !== undefined ? { httpsPort: k.httpsPort } : {}),
      ...(k.healthPort !== undefined ? { healthPort: k.healthPort } : {}),
      ...(k.healthPath !== undefined ? { healthPath: k.healthPath } : {}),
      ...(k.proxyProtocol !== undefined ? { proxyProtocol: k.proxyProtocol } : {}),
    };
  } else {
    delete s.ingressBackend;
  }
  if (k.metricsPort !== undefined) s.metrics = { port: k.metricsPort };
  if (k.conntrackPort !== undefined) s.conntrack = { port: k.conntrackPort };
  if (k.advertInterval !== undefined || k.routerId !== undefined) {
    s.vrrp = {
      ...(k.advertInterval !== undefined ? { advertInterval: k.advertInterval } : {}),
      ...(k.routerId !== undefined ? { routerId: k.routerId } : {}),
    };
  }
  if (k.nextHop !== undefined) s.platform.publicNetwork.nextHop = k.nextHop;
  return s;
}

const NUM_SPECS = 80;
const MAX_RENDERED = 24;

suite("generated specs: accepted ones render files every real checker accepts; refused ones get field: rule", () => {
  test(`${NUM_SPECS} specs (seeded), at most ${MAX_RENDERED} rendered and checked for both LBs`, () => {
    const hosts = [readHost(`${REPO}/examples/host-lb1.yaml`), readHost(`${REPO}/examples/host-lb2.yaml`)];
    let accepted = 0;
    let refused = 0;
    const rules = new Map<string, number>();
    const t0 = Date.now();
    fc.assert(
      fc.property(knobs, (k) => {
        const raw = specOf(k);
        const r = validateSpec(raw);
        if (!r.ok) {
          refused++;
          for (const p of r.problems) {
            expect(formatProblem(p)).toMatch(/^[A-Za-z0-9_.[\]]+: \S/);
            const rule = p.rule.split(":")[0] ?? p.rule;
            rules.set(rule, (rules.get(rule) ?? 0) + 1);
          }
          return;
        }
        if (accepted >= MAX_RENDERED) return;
        accepted++;
        for (const h of hosts) {
          const tree = renderAll({ spec: r.value, host: h, backends: resolveBackends(r.value, {}) });
          const failed = checkRenderedTree(tree).filter((c) => !c.ok);
          if (failed.length > 0) {
            throw new Error(
              `an accepted spec renders a file its checker refuses:\n${JSON.stringify(raw)}\n${failed.map((f) => `${f.path} (${f.checker}): ${f.output.slice(0, 400)}`).join("\n")}`,
            );
          }
        }
      }),
      { seed: 1812, numRuns: NUM_SPECS, endOnFailure: true },
    );
    const top = [...rules]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([rule, n]) => `${n}× ${rule}`);
    process.stderr.write(
      `[spec-fuzz] ${NUM_SPECS} specs: ${accepted} accepted, rendered and checked; ${refused} refused (${((Date.now() - t0) / 1000).toFixed(1)} s); most frequent rules: ${top.join("; ")}\n`,
    );
    // the generator must reach both sides, or the property proves little
    expect(accepted).toBeGreaterThanOrEqual(10);
    expect(refused).toBeGreaterThanOrEqual(10);
  });
});
