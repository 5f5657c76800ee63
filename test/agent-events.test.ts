/**
 * The agent's Event recorder (agent/kube/events.ts): deduplication and the rate bound, decided without the API
 * server (the requests it makes go to a recording stand-in of the client here; test/agent-lab.test.ts and
 * test/agent-services-lab.test.ts post them to a real kube-apiserver).
 */
import { EventRecorder, loadBalancerRegarding, microTime } from "../agent/kube/events";
import type { KubeClient } from "../agent/kube/client";

function recorder(o: { now: () => number; burst?: number; refillMs?: number; dedupeMs?: number }) {
  const posted: { path: string; body: { reason: string; note: string; regarding: unknown; eventTime: string } }[] = [];
  const client = {
    request: (_m: string, path: string, opts: { body: unknown }) => {
      posted.push({ path, body: opts.body as (typeof posted)[number]["body"] });
      return Promise.resolve({});
    },
  } as unknown as KubeClient;
  const r = new EventRecorder(client, {
    reportingInstance: "lab-lb-1",
    regarding: () => loadBalancerRegarding("edgepair-system", "lab", "uid-1"),
    ...o,
  });
  return { r, posted };
}

describe("EventRecorder", () => {
  test("the same reason and note within the window is sent once; another note, or after the window, again", async () => {
    let now = 1_000_000;
    const { r, posted } = recorder({ now: () => now, dedupeMs: 60_000 });
    const e = {
      type: "Warning" as const,
      reason: "InvalidSpec",
      action: "Validate",
      note: "network.cidr: must be a CIDR",
    };
    r.record(e);
    r.record(e);
    r.record({ ...e, note: "other" });
    now += 61_000;
    r.record(e);
    await r.flush();
    expect(posted.map((p) => p.body.note)).toEqual([
      "network.cidr: must be a CIDR",
      "other",
      "network.cidr: must be a CIDR",
    ]);
    expect(posted[0]!.path).toBe("/apis/events.k8s.io/v1/namespaces/edgepair-system/events");
    expect(posted[0]!.body.regarding).toEqual({
      apiVersion: "edgepair.io/v1alpha1",
      kind: "LoadBalancer",
      namespace: "edgepair-system",
      name: "lab",
      uid: "uid-1",
    });
    expect(posted[0]!.body.eventTime).toBe(microTime(1_000_000));
  });

  test("a burst, then one per refill period: a flapping pair cannot flood the API server; the drop is counted", async () => {
    let now = 0;
    const { r, posted } = recorder({ now: () => now, burst: 3, refillMs: 10_000 });
    for (let i = 0; i < 10; i++)
      r.record({ type: "Normal", reason: "BecameMaster", action: "Failover", note: `flip ${i}` });
    now += 10_000;
    r.record({ type: "Normal", reason: "BecameMaster", action: "Failover", note: "after a refill" });
    await r.flush();
    expect(posted.map((p) => p.body.note)).toEqual(["flip 0", "flip 1", "flip 2", "after a refill"]);
    expect(r.dropped).toBe(7);
  });

  test("a note is cut at 1 kB", async () => {
    const { r, posted } = recorder({ now: () => 0 });
    r.record({ type: "Warning", reason: "ApplyFailed", action: "Apply", note: "x".repeat(5000) });
    await r.flush();
    expect(posted[0]!.body.note).toHaveLength(1000);
  });
});
