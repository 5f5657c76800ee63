/**
 * The secret delivery's own script (components/secret-delivery.ts), run by a real shell as root with the secrets on
 * its stdin, exactly as SecretDelivery's SSH command runs it on an LB. Its writes land in an overlay over /etc inside
 * a private mount namespace (unshare), so this machine's /etc is untouched; `systemctl` is a stand-in on PATH that
 * records what the script restarts (no systemd to restart anything here). Needs root.
 *
 * Proved: every secret lands 0600 with exactly the new value; the old value is nowhere under the overlay afterwards
 * (no temp file left behind); an unchanged secret is not rewritten and restarts nothing, nor is a token the agent has
 * renewed since (its kept copy is the delivered one); a rotated token replaces both copies and restarts the
 * agent, a rotated metrics password or registry credential restarts nothing (nothing on the LB keeps a copy); no value
 * reaches the script's output or its command line.
 */
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deliveryScript, secretsStdin, SECRET_USERS } from "../components/secret-delivery";
import type { BootstrapSecrets } from "../cloud-init";

const suite = process.getuid?.() === 0 ? describe : describe.skip;
const IMAGE = `registry.example/edgepair/appliance@sha256:${"b".repeat(64)}`;
const AGENT = {
  imageRef: IMAGE,
  cluster: {
    apiServers: ["https://192.168.100.10:6443"],
    tlsServerName: "api.lab.example",
    namespace: "edgepair-system",
    loadBalancerName: "lab",
  },
};

suite("the secret delivery script, run for real (overlay over /etc, systemctl recorded)", () => {
  let dir: string;
  const upper = () => join(dir, "upper");
  const restarts = () =>
    existsSync(join(dir, "systemctl.log"))
      ? readFileSync(join(dir, "systemctl.log"), "utf8").trim().split("\n").filter(Boolean)
      : [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "edgepair-secret-delivery-"));
    for (const d of ["upper", "work", "bin"]) mkdirSync(join(dir, d));
    writeFileSync(join(dir, "bin", "systemctl"), `#!/bin/sh\necho "$*" >>${dir}/systemctl.log\n`);
    chmodSync(join(dir, "bin", "systemctl"), 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** One delivery: the script in a fresh private mount namespace whose /etc is the overlay (state kept in upper/). */
  function deliver(secrets: BootstrapSecrets, agent = AGENT): { code: number | null; out: string } {
    rmSync(join(dir, "systemctl.log"), { force: true });
    const inner = `mount -t overlay overlay -o lowerdir=/etc,upperdir=${upper()},workdir=${dir}/work /etc && PATH=${dir}/bin:$PATH exec sh -c "$1"`;
    const r = spawnSync(
      "unshare",
      ["--mount", "--propagation", "private", "sh", "-c", inner, "deliver", deliveryScript(agent)],
      { input: secretsStdin(secrets), encoding: "utf8" },
    );
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  }
  const file = (p: string) => join(upper(), p.replace(/^\/etc\//, ""));
  const everything = (): string =>
    execFileSync("sh", ["-c", `find ${upper()} -type f -exec cat {} +`], { encoding: "utf8" });

  const first: BootstrapSecrets = {
    clusterToken: "token-one",
    metricsPassword: "metrics-one",
    registryAuth: '{"auths":{"r.example":{"auth":"b25lOm9uZQ=="}}}\n',
  };

  test("first delivery: every file 0600 with its value, agent.yaml 0644; the agent restarts; no value in the output", () => {
    const r = deliver(first);
    expect(r.code).toBe(0);
    expect(readFileSync(file("/etc/edgepair/secrets/cluster-token"), "utf8")).toBe("token-one");
    expect(readFileSync(file("/etc/edgepair/secrets/metrics-password"), "utf8")).toBe("metrics-one");
    expect(readFileSync(file("/etc/ostree/auth.json"), "utf8")).toBe(first.registryAuth);
    for (const p of [
      "/etc/edgepair/secrets/cluster-token",
      "/etc/edgepair/secrets/metrics-password",
      "/etc/ostree/auth.json",
    ]) {
      expect([p, statSync(file(p)).mode & 0o777]).toEqual([p, 0o600]);
    }
    expect(statSync(file("/etc/edgepair/agent.yaml")).mode & 0o777).toBe(0o644);
    // the token also where the agent keeps the delivered one once it renews (bootstrapTokenPath)
    expect(readFileSync(file("/etc/edgepair/secrets/cluster-token.bootstrap"), "utf8")).toBe("token-one\n");
    expect(statSync(file("/etc/edgepair/secrets/cluster-token.bootstrap")).mode & 0o777).toBe(0o600);
    expect(readFileSync(file("/etc/edgepair/agent.yaml"), "utf8")).toContain("loadBalancerName: lab");
    expect(restarts()).toEqual(["try-restart edgepair-agent.service"]);
    for (const v of Object.values(first)) expect(r.out).not.toContain(v);
    // nothing of a value in the command line either: it is all on stdin
    for (const v of Object.values(first)) expect(deliveryScript(AGENT)).not.toContain(v);
  });

  test("the same secrets again: nothing rewritten, nothing restarted", () => {
    const before = statSync(file("/etc/edgepair/secrets/cluster-token")).ino;
    const r = deliver(first);
    expect(r.code).toBe(0);
    expect(statSync(file("/etc/edgepair/secrets/cluster-token")).ino).toBe(before);
    expect(restarts()).toEqual([]);
  });

  test("the agent renewed its token (a short-lived one in the file): delivering the same token again leaves it, restarts nothing", () => {
    writeFileSync(file("/etc/edgepair/secrets/cluster-token"), "renewed-short-lived-token\n", { mode: 0o600 });
    const r = deliver(first);
    expect(r.code).toBe(0);
    expect(readFileSync(file("/etc/edgepair/secrets/cluster-token"), "utf8")).toBe("renewed-short-lived-token\n");
    expect(restarts()).toEqual([]);
  });

  test("the metrics password and the registry credentials rotated: the new values live, the old ones gone, nothing restarted", () => {
    const r = deliver({
      ...first,
      metricsPassword: "metrics-two",
      registryAuth: '{"auths":{"r.example":{"auth":"dHdvOnR3bw=="}}}\n',
    });
    expect(r.code).toBe(0);
    expect(readFileSync(file("/etc/edgepair/secrets/metrics-password"), "utf8")).toBe("metrics-two");
    expect(readFileSync(file("/etc/ostree/auth.json"), "utf8")).toContain("dHdvOnR3bw==");
    expect(statSync(file("/etc/edgepair/secrets/metrics-password")).mode & 0o777).toBe(0o600);
    const all = everything();
    expect(all).not.toContain("metrics-one");
    expect(all).not.toContain("b25lOm9uZQ==");
    // no temp file beside the secrets
    expect(readdirSync(file("/etc/edgepair/secrets")).sort()).toEqual([
      "cluster-token",
      "cluster-token.bootstrap",
      "metrics-password",
    ]);
    expect(restarts()).toEqual(
      [...SECRET_USERS.metricsPassword, ...SECRET_USERS.registryAuth].map((u) => `try-restart ${u}`),
    );
  });

  test("the token rotated: the agent restarts once, the old token is gone", () => {
    const r = deliver({
      ...first,
      clusterToken: "token-two",
      metricsPassword: "metrics-two",
      registryAuth: '{"auths":{"r.example":{"auth":"dHdvOnR3bw=="}}}\n',
    });
    expect(r.code).toBe(0);
    expect(readFileSync(file("/etc/edgepair/secrets/cluster-token"), "utf8")).toBe("token-two");
    expect(readFileSync(file("/etc/edgepair/secrets/cluster-token.bootstrap"), "utf8")).toBe("token-two\n");
    expect(everything()).not.toContain("token-one");
    expect(readdirSync(file("/etc/edgepair/secrets")).sort()).toEqual([
      "cluster-token",
      "cluster-token.bootstrap",
      "metrics-password",
    ]);
    expect(restarts()).toEqual(["try-restart edgepair-agent.service"]);
  });

  test("counter-cases: an unknown secret name stops the script (exit 2) before anything else is written", () => {
    const tokenBefore = readFileSync(file("/etc/edgepair/secrets/cluster-token"), "utf8");
    const inner = `mount -t overlay overlay -o lowerdir=/etc,upperdir=${upper()},workdir=${dir}/work /etc && PATH=${dir}/bin:$PATH exec sh -c "$1"`;
    const r = spawnSync(
      "unshare",
      ["--mount", "--propagation", "private", "sh", "-c", inner, "deliver", deliveryScript(AGENT)],
      {
        input: `bogus ${Buffer.from("x").toString("base64")}\nclusterToken ${Buffer.from("token-three").toString("base64")}\n`,
        encoding: "utf8",
      },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("unknown secret name");
    expect(readFileSync(file("/etc/edgepair/secrets/cluster-token"), "utf8")).toBe(tokenBefore);
  });
});
