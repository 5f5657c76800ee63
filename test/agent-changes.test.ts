/** How the agent classifies a new render (agent/changes.ts): which changes go through the runtime API, which BACKUP first. */
import {
  classifyChanges,
  desiredStateHash,
  renderHash,
  serverShapesChanged,
  withoutServerLines,
} from "../agent/changes";
import { PEER_STALE_MS, rolloutDecision, type PeerView } from "../agent/rollout";
import { renderAll } from "../render";
import type { RenderedFile } from "../render/types";
import type { ResolvedSpec } from "../spec/types";
import { devBackends, devResolved, primaryHost } from "./fixtures/resolved";

const render = (spec: ResolvedSpec = devResolved, backends = devBackends) =>
  renderAll({ spec, host: primaryHost, backends });
const live = (files: RenderedFile[]) => new Map(files.map((f) => [f.path, { content: f.content, mode: f.mode }]));

test("nothing changed: kind none, the hash is stable", () => {
  const a = render();
  expect(classifyChanges(render(), live(a))).toMatchObject({ kind: "none", changed: [], risky: [] });
  expect(renderHash(render())).toBe(renderHash(a));
});

test("a backend added changes only haproxy.cfg's server lines: servers-only (runtime API, no reload)", () => {
  const before = render();
  const after = render(devResolved, {
    ...devBackends,
    api: [...devBackends.api, { name: "cp-new", address: "192.168.100.13" }],
  });
  const c = classifyChanges(after, live(before));
  expect(c).toMatchObject({ kind: "servers-only", changed: ["/etc/haproxy/haproxy.cfg"], risky: [] });
  expect(c.desiredHash).not.toBe(renderHash(before));
});

test("a new VIP is risky (BACKUP first): keepalived, the fip keyfile and haproxy's binds change", () => {
  const before = render();
  const spec: ResolvedSpec = {
    ...devResolved,
    virtualAddresses: {
      ...devResolved.virtualAddresses,
      ingress: [...devResolved.virtualAddresses.ingress, { address: "198.51.100.81", family: 4, type: "public" }],
    },
    derived: {
      ...devResolved.derived,
      publicVips: [...devResolved.derived.publicVips, { address: "198.51.100.81", family: 4, type: "public" }],
      frontends: {
        ...devResolved.derived.frontends,
        ingress: [...devResolved.derived.frontends.ingress, { address: "198.51.100.81", family: 4, type: "public" }],
      },
    },
  };
  const c = classifyChanges(render(spec), live(before));
  expect(c.kind).toBe("risky");
  expect(c.risky).toEqual(
    expect.arrayContaining([
      "/etc/haproxy/haproxy.cfg",
      "/etc/NetworkManager/system-connections/edgepair-fip.nmconnection",
    ]),
  );
});

test("counter-case: a changed server option is not servers-only; a mode change alone counts", () => {
  const before = render();
  const after = before.map((f) =>
    f.path === "/etc/haproxy/haproxy.cfg"
      ? { ...f, content: f.content.replace("timeout server 1h", "timeout server 2h") }
      : f,
  );
  expect(classifyChanges(after, live(before)).kind).toBe("risky");
  const modeOnly = before.map((f) => (f.path === "/etc/edgepair/keepalived-notify.sh" ? { ...f, mode: 0o755 } : f));
  expect(classifyChanges(modeOnly, live(before))).toMatchObject({
    kind: "safe",
    changed: ["/etc/edgepair/keepalived-notify.sh"],
  });
  expect(withoutServerLines("backend b\n    server a 1.2.3.4:1 check\n    balance roundrobin")).toBe(
    "backend b\n    balance roundrobin",
  );
});

test("a new API port rewrites only server lines, yet is risky: the servers' shape changed, not their membership", () => {
  const live = new Map(
    renderAll({ spec: devResolved, host: primaryHost, backends: devBackends }).map((f) => [
      f.path,
      { content: f.content, mode: f.mode },
    ]),
  );
  const moved = renderAll({
    spec: { ...devResolved, apiBackend: { ...devResolved.apiBackend, port: 7443 } } as ResolvedSpec,
    host: primaryHost,
    backends: devBackends,
  });
  const cfg = (files: Iterable<{ content: string }>) =>
    [...files].map((f) => f.content).find((c) => c.includes("backend be_api")) ?? "";
  expect(withoutServerLines(cfg(live.values()))).toBe(withoutServerLines(cfg(moved)));
  expect(serverShapesChanged(cfg(live.values()), cfg(moved))).toBe(true);
  expect(classifyChanges(moved, live).kind).toBe("risky");
  // counter-case: one more server of the same shape is membership
  const grown = renderAll({
    spec: devResolved,
    host: primaryHost,
    backends: { ...devBackends, api: [...devBackends.api, { name: "192.168.100.13", address: "192.168.100.13" }] },
  });
  expect(serverShapesChanged(cfg(live.values()), cfg(grown))).toBe(false);
});

test("the rollout key is the desired state's hash: equal on both LBs although their renders differ", () => {
  const secondary = { ...primaryHost, hostname: "lab-lb-2", role: "secondary" as const };
  const a = renderAll({ spec: devResolved, host: primaryHost, backends: devBackends });
  const b = renderAll({ spec: devResolved, host: secondary, backends: devBackends });
  expect(renderHash(a)).not.toBe(renderHash(b));
  expect(desiredStateHash(devResolved, devBackends)).toBe(desiredStateHash(devResolved, devBackends));
  expect(desiredStateHash({ ...devResolved, metrics: { port: 9404 } }, devBackends)).not.toBe(
    desiredStateHash(devResolved, devBackends),
  );
});

describe("BACKUP first (agent/rollout.ts)", () => {
  const before = render();
  const risky = classifyChanges(
    before.map((f) => (f.path === "/etc/haproxy/haproxy.cfg" ? { ...f, content: `${f.content}\n# changed` } : f)),
    live(before),
  );
  const peer = (over: Partial<PeerView> = {}): PeerView => ({
    name: "lab-lb-2",
    appliedHash: "old",
    ready: true,
    heartbeatAgeMs: 1000,
    ...over,
  });

  test("the BACKUP applies a risky change at once, gated; the MASTER waits until the peer reports it and is Ready", () => {
    expect(rolloutDecision("BACKUP", risky, peer())).toMatchObject({ action: "apply", gate: true });
    expect(rolloutDecision("MASTER", risky, peer())).toMatchObject({ action: "wait" });
    expect(rolloutDecision("MASTER", risky, peer({ appliedHash: risky.desiredHash, ready: false }))).toMatchObject({
      action: "wait",
    });
    expect(rolloutDecision("MASTER", risky, peer({ appliedHash: risky.desiredHash }))).toMatchObject({
      action: "apply",
      gate: true,
    });
  });

  test("no peer or a silent one: the MASTER applies alone, gated; safe and membership changes never wait", () => {
    expect(rolloutDecision("MASTER", risky, undefined)).toMatchObject({ action: "apply", gate: true });
    expect(rolloutDecision("MASTER", risky, peer({ heartbeatAgeMs: PEER_STALE_MS + 1 }))).toMatchObject({
      action: "apply",
      gate: true,
    });
    const servers = classifyChanges(
      render(devResolved, { ...devBackends, api: devBackends.api.slice(1) }),
      live(before),
    );
    expect(rolloutDecision("MASTER", servers, peer())).toMatchObject({ action: "apply", gate: false });
    expect(rolloutDecision("MASTER", classifyChanges(before, live(before)), peer())).toEqual({ action: "nothing" });
  });
});
