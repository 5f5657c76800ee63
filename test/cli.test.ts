/**
 * The command line as scripts call it: the real bin, real exit codes, real files with their modes.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { run } from "./checkers/run";
import { checkRenderedTree } from "./checkers/all";
import { devSpecRaw, REPO } from "./fixtures/variants";

const BIN = join(REPO, "bin", "edgepair.js");
const edgepair = (...args: string[]) => run(process.execPath, [BIN, ...args], { timeoutMs: 30_000 });

let dir: string;
beforeAll(() => (dir = mkdtempSync(join(tmpdir(), "edgepair-cli-"))));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeSpec(name: string, value: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof value === "string" ? value : stringify(value));
  return p;
}

describe("edgepair validate", () => {
  test("the dev stack file is valid: exit 0", () => {
    const r = edgepair("validate", "--spec", join(REPO, "Pulumi.dev.yaml"));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ok: lab \(talos, VRRP router ID \d+\)/);
  });

  test("a bad spec: exit 2, one field.path: rule line per problem on stderr, nothing on stdout", () => {
    const raw = devSpecRaw() as Record<string, any>;
    raw.distribution = "rke2";
    raw.network.gateway = "192.168.100.2";
    raw.virtualAddresses.api[1].address = "198.51.100.0/24";
    const r = edgepair("validate", "--spec", writeSpec("bad.yaml", raw));
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n")).toEqual([
      "distribution: must be one of openshift, talos, generic",
      "virtualAddresses.api[1].address: must be a single address (/32), not the range /24",
      "network.lbAddresses[0]: must differ from the gateway 192.168.100.2",
    ]);
  });

  test("a LoadBalancer resource is accepted as the spec file", () => {
    const cr = {
      apiVersion: "edgepair.dev/v1alpha1",
      kind: "LoadBalancer",
      metadata: { name: "lab" },
      spec: devSpecRaw(),
    };
    expect(edgepair("validate", "--spec", writeSpec("cr.yaml", cr)).status).toBe(0);
  });

  test("invalid YAML, a missing file and a missing flag are bad input: exit 2", () => {
    const yaml = edgepair("validate", "--spec", writeSpec("broken.yaml", "clusterName: [lab\n"));
    expect(yaml.status).toBe(2);
    expect(yaml.stderr).toMatch(/^spec: is not valid YAML/);
    const missing = edgepair("validate", "--spec", join(dir, "nope.yaml"));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^--spec: cannot read .*nope\.yaml: ENOENT/);
    expect(edgepair("validate").status).toBe(2);
  });
});

describe("hostile YAML: exit 2 with a rule, quickly, within bounded memory (issue 18)", () => {
  test("an alias bomb: refused with a rule, not a crash (it exited 1 before)", () => {
    const bomb = [
      "a: &a [x, x, x, x, x, x, x, x, x, x]",
      ...Array.from(
        { length: 9 },
        (_, i) =>
          `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10)
            .fill(`*${String.fromCharCode(97 + i)}`)
            .join(", ")}]`,
      ),
    ].join("\n");
    const r = edgepair("validate", "--spec", writeSpec("bomb.yaml", `${bomb}\n`));
    expect([r.status, r.stderr.trim()]).toEqual([
      2,
      "spec: expands its aliases too far (more than 100 per alias): not a spec",
    ]);
  });

  test("deep nesting: refused with a rule, not a stack overflow", () => {
    const r = edgepair(
      "validate",
      "--spec",
      writeSpec("deep.yaml", `clusterName: ${"[".repeat(100000)}${"]".repeat(100000)}\n`),
    );
    expect([r.status, r.stderr.trim()]).toEqual([2, "spec: nests deeper than 64 levels"]);
  });

  test("a duplicate key names the key and its line", () => {
    const text = `${stringify(devSpecRaw())}distribution: generic\n`;
    const r = edgepair("validate", "--spec", writeSpec("dup.yaml", text));
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(
      `spec: is not valid YAML: the key "distribution" appears twice in one mapping (line ${text.trim().split("\n").length})`,
    );
  });

  test("a spec file over 1 MiB is refused before it is parsed", () => {
    const big = `${stringify(devSpecRaw())}# ${"x".repeat(1024 * 1024)}\n`;
    const t0 = Date.now();
    const r = edgepair("validate", "--spec", writeSpec("big.yaml", big));
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(/^spec: is \d+ bytes: a spec document must be at most 1048576 bytes \(1 MiB\)$/);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  test("counter-cases: aliases, nesting and size within the bounds still validate", () => {
    const raw = devSpecRaw() as Record<string, any>;
    const text = stringify(raw).replace(
      "apiBackend:",
      'x-anchors: &sel {node-role.kubernetes.io/control-plane: ""}\napiBackend:',
    );
    // an alias used as YAML users do: one anchor, referenced; unknown top-level fields are still refused by the spec
    expect(edgepair("validate", "--spec", writeSpec("alias.yaml", text)).stderr.trim()).toBe(
      "x-anchors: unknown field",
    );
    expect(
      edgepair("validate", "--spec", writeSpec("padded.yaml", `${stringify(raw)}# ${"x".repeat(500 * 1024)}\n`)).status,
    ).toBe(0);
  });
});

describe("edgepair render", () => {
  const host = join(REPO, "examples", "host-lb1.yaml");

  test("the dev stack renders a tree every real checker accepts, with the promised modes", () => {
    const out = join(dir, "lb1");
    const r = edgepair("render", "--spec", join(REPO, "Pulumi.dev.yaml"), "--host", host, "--out", out);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const listed = r.stdout
      .trim()
      .split("\n")
      .map((l) => l.split(/\s+/));
    expect(listed.length).toBeGreaterThanOrEqual(8);
    for (const [mode, , path] of listed) {
      expect(statSync(join(out, path!)).mode & 0o777).toBe(parseInt(mode!, 8));
    }
    const nm = listed.filter(([, , p]) => p!.startsWith("/etc/NetworkManager/system-connections/"));
    expect(nm.length).toBeGreaterThanOrEqual(2);
    for (const [mode] of nm) expect(mode).toBe("0600");
    expect(existsSync(join(out, "etc/haproxy/haproxy.cfg"))).toBe(true);
    expect(existsSync(join(out, "etc/keepalived/keepalived.conf"))).toBe(true);

    const tree = listed.map(([mode, service, path]) => ({
      path: path!,
      mode: parseInt(mode!, 8),
      service: service!,
      content: readFileSync(join(out, path!), "utf8"),
    }));
    const results = checkRenderedTree(tree);
    const failed = results.filter((c) => !c.ok);
    if (failed.length > 0) throw new Error(failed.map((f) => `${f.path} (${f.checker}): ${f.output}`).join("\n"));
    // every file was checked by something, none silently skipped
    expect(results.map((c) => c.path).sort()).toEqual(tree.map((f) => f.path).sort());
  });

  test("--api-backends replaces the static backends", () => {
    const out = join(dir, "backends");
    const r = edgepair(
      "render",
      "--spec",
      join(REPO, "Pulumi.dev.yaml"),
      "--host",
      host,
      "--out",
      out,
      "--api-backends",
      "192.168.100.51, 192.168.100.50",
    );
    expect(r.status).toBe(0);
    const cfg = readFileSync(join(out, "etc/haproxy/haproxy.cfg"), "utf8");
    expect(cfg).toMatch(/192\.168\.100\.50:6443[\s\S]*192\.168\.100\.51:6443/);
    expect(cfg).not.toContain("192.168.100.10:6443");
  });

  test("bad input writes nothing and leaves the last good tree as it was", () => {
    const out = join(dir, "keep");
    expect(edgepair("render", "--spec", join(REPO, "Pulumi.dev.yaml"), "--host", host, "--out", out).status).toBe(0);
    const before = readFileSync(join(out, "etc/haproxy/haproxy.cfg"), "utf8");
    const raw = devSpecRaw() as Record<string, any>;
    raw.virtualAddresses.api[0].address = "192.168.100.200";
    raw.vrrp = { routerId: 0 };
    const r = edgepair("render", "--spec", writeSpec("bad-render.yaml", raw), "--host", host, "--out", out);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("vrrp.routerId: must be at least 1");
    expect(readFileSync(join(out, "etc/haproxy/haproxy.cfg"), "utf8")).toBe(before);

    const fresh = join(dir, "never");
    const badBackend = edgepair(
      "render",
      "--spec",
      join(REPO, "Pulumi.dev.yaml"),
      "--host",
      host,
      "--out",
      fresh,
      "--api-backends",
      "192.168.100.10,nope",
    );
    expect(badBackend.status).toBe(2);
    expect(badBackend.stderr.trim()).toBe("--api-backends[1]: must be an IPv4 or IPv6 address");
    expect(existsSync(fresh)).toBe(false);
  });

  test("bad host facts name the host field", () => {
    const badHost = join(dir, "host.yaml");
    writeFileSync(
      badHost,
      stringify({
        hostname: "lb1",
        role: "leader",
        publicInterface: { name: "eth0", mac: "52:54:00:00:00:01" },
        privateInterface: { name: "eth1", mac: "52:54:00:00:00:02" },
      }),
    );
    const r = edgepair("render", "--spec", join(REPO, "Pulumi.dev.yaml"), "--host", badHost, "--out", join(dir, "x"));
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe("host.role: must be one of primary, secondary");
  });
});
