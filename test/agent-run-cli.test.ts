/**
 * `edgepair agent run` as the process systemd runs: it starts from the three files cloud-init wrote, keeps running
 * (retrying) while the API is away, and on SIGTERM stops every watch, timer and listener and exits 0 — never
 * printing the token. A bad agent.yaml exits 2 naming the field. The agent runs inside a throwaway network
 * namespace with the host's NIC names: it detects its VRRP state and re-asserts the floating IPs with `ip`, which
 * must never touch this machine's own interfaces.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { createNetns, deleteNetns } from "./checkers/netns";
import { primaryHost } from "./fixtures/resolved";
import { devSpecRaw, REPO } from "./fixtures/variants";

jest.setTimeout(60_000);

const TOKEN = "eyJhbGciOiJSUzI1NiJ9.agent-run-cli-secret-token";

/** Nothing listens in the fresh namespace: any port on its loopback is closed. */
const CLOSED_PORT = 6443;

function writeRoot(agent: unknown): string {
  const root = mkdtempSync(join(tmpdir(), "ep-agent-run-"));
  mkdirSync(join(root, "etc/edgepair/secrets"), { recursive: true, mode: 0o700 });
  writeFileSync(join(root, "etc/edgepair/spec.yaml"), stringify(devSpecRaw()));
  writeFileSync(join(root, "etc/edgepair/host.yaml"), stringify(primaryHost));
  writeFileSync(join(root, "etc/edgepair/agent.yaml"), stringify(agent));
  writeFileSync(join(root, "etc/edgepair/secrets/cluster-token"), TOKEN, { mode: 0o600 });
  return root;
}

function agentSettings(root: string, apiServer: string): unknown {
  return {
    cluster: {
      apiServers: [apiServer],
      tlsServerName: "api.lab.example",
      namespace: "edgepair-system",
      loadBalancerName: "lab",
      tokenFile: join(root, "etc/edgepair/secrets/cluster-token"),
    },
    imageRef: `registry.example/edgepair/appliance@sha256:${"e".repeat(64)}`,
  };
}

let ns = "";
beforeAll(() => {
  ns = createNetns([
    { name: primaryHost.publicInterface.name, addresses: ["172.31.250.2/24"] },
    { name: primaryHost.privateInterface.name, addresses: ["192.168.100.2/24"] },
  ]);
});
afterAll(() => {
  if (ns) deleteNetns(ns);
});

function runAgent(root: string): {
  done: Promise<{ code: number | null; output: string }>;
  output: () => string;
  kill: (s: NodeJS.Signals) => void;
} {
  const child = spawn(
    "ip",
    ["netns", "exec", ns, process.execPath, join(REPO, "bin/edgepair.js"), "agent", "run", "--root", root],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const done = new Promise<{ code: number | null; output: string }>((resolve) =>
    child.on("exit", (code) => resolve({ code, output })),
  );
  const timer = setTimeout(() => child.kill("SIGKILL"), 45_000);
  void done.then(() => clearTimeout(timer));
  return { done, output: () => output, kill: (s) => child.kill(s) };
}

test("runs while the API is away, and SIGTERM ends it cleanly with exit 0; the token is never printed", async () => {
  const root = writeRoot({});
  try {
    writeFileSync(
      join(root, "etc/edgepair/agent.yaml"),
      stringify(agentSettings(root, `https://127.0.0.1:${CLOSED_PORT}`)),
    );
    const a = runAgent(root);
    for (let i = 0; i < 200 && !a.output().includes("running for lab"); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(a.output()).toContain("running for lab as primary");
    await new Promise((r) => setTimeout(r, 1500)); // a few failed API calls and back-offs
    a.kill("SIGTERM");
    const t0 = Date.now();
    const { code, output } = await a.done;
    expect({ code, stoppedWithinMs: Date.now() - t0 < 10_000 }).toEqual({ code: 0, stoppedWithinMs: true });
    expect(output).toContain("SIGTERM: stopping");
    expect(output).not.toContain(TOKEN);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("phase one: an agent.yaml without cluster access ends at once with exit 0 and says why (the unit is not failed)", async () => {
  const root = writeRoot({ imageRef: `registry.example/edgepair/appliance@sha256:${"e".repeat(64)}` });
  try {
    const { code, output } = await runAgent(root).done;
    expect(code).toBe(0);
    expect(output).toContain("agent.yaml has no cluster access yet: serving the spec's static backends");
    expect(output).not.toContain("running for lab");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("counter-case: an agent.yaml naming the pair's own VIP as API server exits 2 with the field", async () => {
  const root = writeRoot({});
  try {
    writeFileSync(
      join(root, "etc/edgepair/agent.yaml"),
      stringify(agentSettings(root, "https://192.168.100.100:6443")),
    );
    const { code, output } = await runAgent(root).done;
    expect(code).toBe(2);
    expect(output).toMatch(/agent\.yaml: cluster\.apiServers\[0\]: /);
    expect(output).not.toContain(TOKEN);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
