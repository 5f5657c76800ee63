/**
 * extraServices through the kernel (render/service-lb.ts), in network namespaces with the real daemons: TCP and UDP
 * frontends on the public ingress VIP, the private API VIP and a routed public pool address, forwarded to echo
 * servers on the lab's workers' NodePorts. What a proxy cannot give is checked: the backend sees the outside
 * client's own address, and established TCP connections and UDP flows survive an unclean failover because their
 * translation is in conntrack, which conntrackd syncs. Without the NAT gateway (nodes do not route through the
 * pair) every Service flow is translated both ways, and still survives. Needs root; skipped otherwise.
 */
import { join } from "node:path";
import type { EgressFigures } from "../bench/failover";
import { flowsReady, startFlows, stopFlows } from "../lab/flows";
import { sleep } from "../lab/exec";
import { Lab, leftovers } from "../lab/lab";
import { newPrefix, OUTSIDE, planLab } from "../lab/topology";
import { resolveSpec } from "../spec/resolve";
import type { ResolvedSpec } from "../spec/types";
import { devSpecRaw } from "./fixtures/variants";

const WORKER = { matchLabels: { "node-role.kubernetes.io/worker": "" } };
const NODE_PORT = 30007;
const PUBLIC_VIP = "198.51.100.80";
const PRIVATE_VIP = "192.168.100.100";
const POOL_ADDRESS = "198.51.100.130";
/** in the private pool: on the cluster network, answered by ARP from the MASTER only */
const PRIVATE_POOL_ADDRESS = "192.168.100.200";

function servicesSpec(opts: { nat: boolean }): ResolvedSpec {
  const raw = devSpecRaw();
  if (!opts.nat) delete (raw.virtualAddresses as Record<string, unknown>).nat;
  const echo = (name: string, protocol: "TCP" | "UDP", address: string, extra: Record<string, unknown> = {}) => ({
    name,
    protocol,
    frontend: { address, port: 7 },
    backend: { nodePort: NODE_PORT, nodeSelector: WORKER },
    ...extra,
  });
  raw.serviceLoadBalancers = {
    pools: [
      { name: "public", addresses: ["198.51.100.128/27"], type: "public" },
      { name: "internal", addresses: ["192.168.100.200-192.168.100.209"], type: "private" },
    ],
  };
  raw.extraServices = [
    echo("echo-tcp", "TCP", PUBLIC_VIP),
    echo("echo-udp", "UDP", PUBLIC_VIP),
    echo("private-tcp", "TCP", PRIVATE_VIP),
    echo("private-udp", "UDP", PRIVATE_VIP),
    // only the lab's client may use it, not the internet host beside it
    echo("pool-tcp", "TCP", POOL_ADDRESS, { sourceRanges: [`${OUTSIDE.client}/32`] }),
    echo("internal-tcp", "TCP", PRIVATE_POOL_ADDRESS),
    echo("internal-udp", "UDP", PRIVATE_POOL_ADDRESS),
  ];
  return resolveSpec(raw);
}

describe("lab plan with Service pools", () => {
  test("the router routes a public pool to the public next hop, like the floating IPs", () => {
    const plan = planLab(servicesSpec({ nat: true }), newPrefix());
    expect(plan.router.routes).toContainEqual({ to: "198.51.100.128/27", via: "172.31.250.10" });
    expect(plan.backends.extra?.["echo-tcp"]?.map((b) => b.address)).toEqual(["192.168.100.20", "192.168.100.21"]);
  });
});

const isRoot = process.getuid?.() === 0;
const suite = isRoot ? describe : describe.skip;

/** The MACs that answer ARP for `address` on the cluster network, asked from the cluster node. */
async function arpAnswerers(lab: Lab, address: string): Promise<string[]> {
  const r = await lab.run(lab.ns("node"), ["arping", "-c", "3", "-w", "4", "-I", "eth0", address], { allowFail: true });
  return [...new Set([...r.stdout.matchAll(/reply from \S+ \[([0-9a-fA-F:]+)\]/g)].map((m) => m[1]!.toLowerCase()))];
}

async function privateMac(lab: Lab, key: "lb1" | "lb2"): Promise<string> {
  return Promise.resolve(lab.state.hostFacts[key]!.privateInterface.mac.toLowerCase());
}

/** Long-lived echo flows from `hostKey` to `target`, across an unclean failover; their figures. */
async function flowsAcrossFailover(
  lab: Lab,
  runs: { name: string; hostKey: string; target: string; tcp: number; udp: number }[],
): Promise<{ name: string; figures: EgressFigures }[]> {
  const started = runs.map((r) => ({ name: r.name, run: startFlows(lab, r.name, r.hostKey, r.target, r) }));
  const results: { name: string; figures: EgressFigures }[] = [];
  try {
    for (const s of started) await flowsReady(s.run);
    await sleep(1500); // conntrackd sends the new states to the peer
    const report = await lab.failover({ restore: false, settleMs: 3000 });
    expect(report.vipMovedMs).toBeDefined();
  } finally {
    for (const s of started) results.push({ name: s.name, figures: await stopFlows(lab, s.run) });
  }
  return results;
}

suite("lab: extraServices through the kernel, with the NAT gateway", () => {
  let lab: Lab;
  const workers = ["worker-0", "worker-1"];

  beforeAll(async () => {
    lab = await Lab.started(servicesSpec({ nat: true }));
  }, 240_000);

  afterAll(async () => {
    if (lab) await lab.down();
  }, 60_000);

  test("TCP and UDP from outside reach a worker's NodePort, which sees the client's own address", async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      for (const udp of [false, true]) {
        const r = await lab.ask("cli", `${PUBLIC_VIP}:7`, { udp });
        expect(r).toMatchObject({ ok: true, peer: OUTSIDE.client });
        if (r.ok) seen.add(r.server);
      }
    }
    // new flows are spread over both NodePorts
    expect([...seen].sort()).toEqual(workers);
  }, 60_000);

  test("from the cluster network (hairpin): answered, the source translated to the gateway VIP", async () => {
    for (const to of [`${PRIVATE_VIP}:7`, `${PUBLIC_VIP}:7`])
      for (const udp of [false, true]) {
        const r = await lab.ask("node", to, { udp });
        expect([to, udp, r]).toEqual([to, udp, expect.objectContaining({ ok: true, peer: "192.168.100.1" })]);
      }
  }, 60_000);

  test("a private pool address: on both LBs' private NIC, ARP answered by the MASTER only, served from the cluster network", async () => {
    for (const key of ["lb1", "lb2"] as const) {
      const addrs = await lab.run(lab.lb(key).ns, ["ip", "-4", "-br", "addr", "show", "dev", "eth1"]);
      expect(addrs.stdout).toContain(`${PRIVATE_POOL_ADDRESS}/32`);
    }
    const active = await lab.active();
    expect(await arpAnswerers(lab, PRIVATE_POOL_ADDRESS)).toEqual([await privateMac(lab, active)]);
    // counter-case: without the ARP guard the BACKUP answers too (the address is on its NIC as well)
    const backup = lab.other(active);
    await lab.run(lab.lb(backup).ns, ["nft", "delete", "table", "arp", "edgepair_service_arp"]);
    try {
      expect((await arpAnswerers(lab, PRIVATE_POOL_ADDRESS)).sort()).toEqual(
        [await privateMac(lab, active), await privateMac(lab, backup)].sort(),
      );
    } finally {
      await lab.run(lab.lb(backup).ns, ["nft", "-f", join(lab.renderedRoot(backup), "etc/edgepair/services.nft")]);
    }
    expect(await arpAnswerers(lab, PRIVATE_POOL_ADDRESS)).toEqual([await privateMac(lab, active)]);
    for (const udp of [false, true])
      expect(await lab.ask("node", `${PRIVATE_POOL_ADDRESS}:7`, { udp })).toMatchObject({
        ok: true,
        peer: "192.168.100.1",
      });
  }, 60_000);

  test("exactly the listed frontends are open, from where each allows", async () => {
    expect(await lab.ask("cli", `${POOL_ADDRESS}:7`)).toMatchObject({ ok: true, peer: OUTSIDE.client });
    // the internet host is outside pool-tcp's source ranges; port 9 and UDP on the pool address are not listed
    expect(await lab.ask("inet", `${POOL_ADDRESS}:7`, { timeoutMs: 1500 })).toMatchObject({ ok: false });
    expect(await lab.ask("cli", `${POOL_ADDRESS}:9`, { timeoutMs: 1500 })).toMatchObject({ ok: false });
    expect(await lab.ask("cli", `${POOL_ADDRESS}:7`, { udp: true, timeoutMs: 1500 })).toMatchObject({ ok: false });
    expect(await lab.ask("cli", `${PUBLIC_VIP}:9`, { timeoutMs: 1500 })).toMatchObject({ ok: false });
  }, 60_000);

  test("unclean failover: established TCP connections and UDP flows, from outside and from the cluster, all survive", async () => {
    const results = await flowsAcrossFailover(lab, [
      { name: "svc-outside", hostKey: "cli", target: `${PUBLIC_VIP}:7`, tcp: 10, udp: 5 },
      { name: "svc-cluster", hostKey: "node", target: `${PRIVATE_VIP}:7`, tcp: 5, udp: 5 },
      // the node's ARP entry for the pool address points at the old MASTER until the new one's gratuitous ARP
      { name: "svc-private-pool", hostKey: "node", target: `${PRIVATE_POOL_ADDRESS}:7`, tcp: 5, udp: 5 },
    ]);
    for (const { name, figures } of results) {
      expect([name, figures.failures]).toEqual([name, []]);
      expect([name, figures.survived]).toEqual([name, figures.total]);
      process.stdout.write(
        `services (NAT gateway), ${name}: ${figures.survived}/${figures.total} flows survived, longest echo gap ${figures.maxGapMs} ms\n`,
      );
    }
    // new connections after the failover are served by the new MASTER, which alone answers ARP now
    expect(await lab.ask("cli", `${PUBLIC_VIP}:7`)).toMatchObject({ ok: true, peer: OUTSIDE.client });
    expect(await arpAnswerers(lab, PRIVATE_POOL_ADDRESS)).toEqual([await privateMac(lab, await lab.active())]);
    expect(await lab.ask("cli", `${PUBLIC_VIP}:7`, { udp: true })).toMatchObject({ ok: true, peer: OUTSIDE.client });
  }, 150_000);

  test("teardown leaves nothing", async () => {
    await lab.down();
    expect(await leftovers(lab.state)).toEqual([]);
  }, 60_000);
});

suite("lab: extraServices without the NAT gateway (full NAT)", () => {
  let lab: Lab;
  const spec = servicesSpec({ nat: false });

  beforeAll(async () => {
    lab = await Lab.started(spec);
  }, 240_000);

  afterAll(async () => {
    if (lab) await lab.down();
  }, 60_000);

  test("the backend sees the pair's moving source address, and answers through it", async () => {
    expect(spec.derived.serviceSourceAddress).toBe(PRIVATE_VIP);
    for (const udp of [false, true])
      expect(await lab.ask("cli", `${PUBLIC_VIP}:7`, { udp })).toMatchObject({ ok: true, peer: PRIVATE_VIP });
  }, 60_000);

  test("unclean failover: every flow survives", async () => {
    const [result] = await flowsAcrossFailover(lab, [
      { name: "svc-full-nat", hostKey: "cli", target: `${PUBLIC_VIP}:7`, tcp: 10, udp: 5 },
    ]);
    const figures = result!.figures;
    expect(figures.failures).toEqual([]);
    expect(figures.survived).toBe(figures.total);
    process.stdout.write(
      `services (full NAT): ${figures.survived}/${figures.total} flows survived, longest echo gap ${figures.maxGapMs} ms\n`,
    );
  }, 150_000);

  test("teardown leaves nothing", async () => {
    await lab.down();
    expect(await leftovers(lab.state)).toEqual([]);
  }, 60_000);
});
