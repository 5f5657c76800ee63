/**
 * DESIGN.md's goal "backend change in the cluster -> first request served by that backend <= 1 s", measured end to
 * end: a Node of the real API server fixture is deleted and created again; the agent on the active LB of the lab
 * (test/fixtures/agent-on-lab.ts) sees it through its watch, renders, and adds the server through HAProxy's runtime
 * API; the DESIGN client (a new connection every 10 ms to the public API VIP) records which backend answered. One
 * sample = Node created -> the first request started after that which that backend served. Needs root.
 *
 * The Node's address is taken out of the LoadBalancer's static addresses (the LBs booted with it): a static address
 * stays a server whatever its Node does (agent/kube/backends.ts), so only a Node-derived server comes and goes.
 */
import { join } from "node:path";
import { readServers, RuntimeSocket } from "../agent/haproxy";
import { readRequests } from "../lab/analysis";
import { stopProcess } from "../lab/exec";
import { CONTROL_PLANE, startAgentOnLab } from "../test/fixtures/agent-on-lab";
import { devSpecRaw } from "../test/fixtures/variants";
import { summarize, type Summary } from "./stats";

export interface ClusterPropagationResult {
  changes: number;
  /** Node created -> first request served by it, ms */
  nodeAddedToFirstRequest: Summary;
  /** Node deleted -> its server gone from HAProxy's runtime list, ms */
  nodeDeletedToServerGone: Summary;
  requests: number;
  failedRequests: number;
  /** failed requests by error, and when they started relative to the nearest Node change (ms, negative = before) */
  failures: { err: string; count: number }[];
  reloads: number;
  /** the first failures' start, relative to the nearest Node change */
  failureOffsets: string[];
  samples: { addedMs: number[]; deletedMs: number[] };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`propagation: ${what} within ${timeoutMs} ms`);
    await sleep(10);
  }
}

export async function benchClusterPropagation(opts: {
  changes: number;
  progress?: (line: string) => void;
}): Promise<ClusterPropagationResult> {
  const say = opts.progress ?? ((l: string) => console.log(l));
  const spec = devSpecRaw();
  const backend = { name: "cp-0", address: (spec.apiBackend as { addresses: string[] }).addresses[0]! };
  const crSpec = {
    ...spec,
    apiBackend: {
      ...(spec.apiBackend as object),
      addresses: (spec.apiBackend as { addresses: string[] }).addresses.slice(1),
    },
  };
  const h = await startAgentOnLab({ crSpec });
  try {
    const lab = h.lab;
    // the lab's host at that address answers with the name it has in the LBs' first render
    const label = lab.plan.hosts.find((x) => x.address === backend.address)!.serverName!;
    const out = join(lab.dir, "logs", "propagation-client.jsonl");
    const client = lab.startClient(
      "propagation-client",
      `https://${lab.plan.targets.apiVipPublic}:${lab.state.spec.apiBackend.port}/who`,
      out,
      { maxMs: 600_000 },
    );
    const inRuntime = async () =>
      (await readServers(new RuntimeSocket(h.haproxySocket()))).some(
        (s) => s.backend === "be_api" && s.name === backend.name,
      );
    const addedMs: number[] = [];
    const deletedMs: number[] = [];
    const events: { at: number; what: string }[] = [];
    try {
      // the agent's first desired state turns the static server into the Node's
      await until("the Node's server in HAProxy", 15_000, async () => ((await inRuntime()) ? true : undefined));
      await sleep(1000);
      for (let i = 0; i < opts.changes; i++) {
        const t1 = Date.now();
        events.push({ at: t1, what: "delete" });
        await h.cluster.deleteNode(backend.name);
        await until("server removed", 15_000, async () => ((await inRuntime()) ? undefined : true));
        deletedMs.push(Date.now() - t1);
        await sleep(300);
        const t0 = Date.now();
        events.push({ at: t0, what: "create" });
        await h.cluster.putNode(backend.name, CONTROL_PLANE, backend.address);
        const first = await until("first request served by the re-added Node", 15_000, async () =>
          readRequests(out).find((r) => r.ok && r.start >= t0 && r.server === label),
        );
        addedMs.push(first.end - t0);
        say(
          `  change ${i + 1}/${opts.changes}: Node added -> first request served by it ${addedMs.at(-1)} ms; deleted -> server gone ${deletedMs.at(-1)} ms`,
        );
        await sleep(300);
      }
    } finally {
      await stopProcess(client, 6000);
    }
    const requests = readRequests(out);
    return {
      changes: opts.changes,
      nodeAddedToFirstRequest: summarize(addedMs),
      nodeDeletedToServerGone: summarize(deletedMs),
      requests: requests.length,
      failedRequests: requests.filter((r) => !r.ok).length,
      failures: Object.entries(
        requests
          .filter((r) => !r.ok)
          .reduce<Record<string, number>>(
            (m, r) => ((m[r.err ?? `status ${r.status}`] = (m[r.err ?? `status ${r.status}`] ?? 0) + 1), m),
            {},
          ),
      ).map(([err, count]) => ({ err, count })),
      reloads: h.reloads.length,
      failureOffsets: requests
        .filter((r) => !r.ok)
        .slice(0, 40)
        .map((r) => {
          const near = events.reduce(
            (a, e) => (Math.abs(e.at - r.start) < Math.abs(a.at - r.start) ? e : a),
            events[0] ?? { at: 0, what: "none" },
          );
          return `${near.what}${r.start - near.at >= 0 ? "+" : ""}${Math.round(r.start - near.at)}`;
        }),
      samples: { addedMs, deletedMs },
    };
  } finally {
    await h.stop();
  }
}
