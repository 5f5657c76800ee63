import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import {
  BOOTSTRAP_COMMAND,
  BOOTSTRAP_PATHS,
  instanceId,
  listSecretFiles,
  OPENSTACK_USER_DATA_BASE64_LIMIT,
  renderMetaData,
  renderUserData,
  renderUserDataView,
  USER_DATA_BYTE_LIMIT,
  type BootstrapSecrets,
  type UserDataInput,
} from "../cloud-init";
import {
  AGENT_SECRET_DEFAULTS,
  parseAgentSettings,
  validateAgentSettings,
  type AgentSettingsInput,
} from "../spec/agent-settings";
import { deriveMac, MAC_PREFIX } from "../spec/mac";
import type { LoadBalancerSpecInput } from "../spec/schema";
import type { HostFacts } from "../spec/types";
import { checkCloudConfig, loadAsCloudInit } from "./checkers/cloud-init";
import { must } from "./checkers/run";
import { devSpecRaw, hosts, variants, variantsByHost } from "./fixtures/variants";
import { checkSpec } from "../spec/checked";

const DIGEST = "a".repeat(64);
const IMAGE = `quay.io/edgepair/lb@sha256:${DIGEST}`;
const SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin@example";

// Distinctive values: a leak shows up as an exact substring.
const SECRETS: Required<BootstrapSecrets> = {
  clusterToken: "eyJhbGciOiJSUzI1NiJ9.TOKEN-SECRET-4b7d1e.sig",
  metricsPassword: "METRICS-SECRET-9c1e",
  registryAuth: JSON.stringify({ auths: { "quay.io": { auth: "UkVHSVNUUlktU0VDUkVULTNmOGE=" } } }),
};
const SECRET_VALUES = [
  SECRETS.clusterToken,
  SECRETS.metricsPassword,
  SECRETS.registryAuth,
  "UkVHSVNUUlktU0VDUkVULTNmOGE=",
];

let caPem = "";
beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), "ep-ca-"));
  try {
    must("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=edgepair-test-ca",
      "-keyout",
      join(dir, "ca.key"),
      "-out",
      join(dir, "ca.crt"),
    ]);
    caPem = readFileSync(join(dir, "ca.crt"), "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function agentFor(raw: LoadBalancerSpecInput): AgentSettingsInput {
  const addresses = raw.apiBackend.addresses ?? [];
  return {
    cluster: {
      apiServers: addresses.map((a) => `https://${a}:6443`),
      tlsServerName: `api.${raw.clusterName}.example.com`,
      caCertificate: caPem,
      namespace: "edgepair",
      loadBalancerName: raw.clusterName,
    },
    imageRef: IMAGE,
  };
}

function inputFor(raw: LoadBalancerSpecInput, host: HostFacts, secrets?: BootstrapSecrets): UserDataInput {
  return {
    spec: checkSpec(raw),
    host,
    agent: agentFor(raw),
    sshAuthorizedKeys: [SSH_KEY],
    hostname: host.hostname,
    ...(secrets ? { secrets } : {}),
  };
}

const devInput = (over: Partial<UserDataInput> = {}): UserDataInput => ({
  ...inputFor(devSpecRaw() as LoadBalancerSpecInput, hosts[0]!, SECRETS),
  ...over,
});

interface LoadedFile {
  path: string;
  owner: string;
  permissions: string;
  content: string;
}
interface Loaded {
  write_files: LoadedFile[];
  [k: string]: unknown;
}

function accepted(text: string): Loaded {
  const r = checkCloudConfig(text);
  if (!r.ok) throw new Error(`cloud-init schema rejected the user-data:\n${r.output}\n${text}`);
  return r.loaded as Loaded;
}

const fileAt = (doc: Loaded, path: string): LoadedFile => {
  const f = doc.write_files.find((x) => x.path === path);
  if (!f) throw new Error(`${path} not in write_files: ${doc.write_files.map((x) => x.path).join(", ")}`);
  return f;
};

const problemsOf = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (e) {
    return (e as Error).message.split("\n");
  }
  throw new Error("expected an error, got a result");
};

describe("checker: cloud-init schema (counter-cases)", () => {
  test("a minimal valid document is accepted", () => {
    expect(checkCloudConfig("#cloud-config\nhostname: a\nruncmd: [[echo, ok]]\n").ok).toBe(true);
    // runcmd items must be strings: a YAML boolean is refused, so the accepted case above is not vacuous.
    expect(checkCloudConfig("#cloud-config\nruncmd: [[true]]\n").ok).toBe(false);
  });
  test("write_files permissions given as a number are rejected by cloud-init itself", () => {
    const r = checkCloudConfig("#cloud-config\nwrite_files:\n  - path: /etc/x\n    permissions: 384\n    content: x\n");
    expect(r.ok).toBe(false);
    expect(r.output).toContain("write_files.0.permissions: 384 is not of type 'string'");
  });
  test("an unknown key inside write_files is rejected by cloud-init itself", () => {
    const r = checkCloudConfig("#cloud-config\nwrite_files:\n  - path: /etc/x\n    mode: '0600'\n    content: x\n");
    expect(r.ok).toBe(false);
    expect(r.output).toContain("'mode' was unexpected");
  });
  test("an unknown top-level key passes cloud-init schema but fails the strict step", () => {
    const text = "#cloud-config\nhostname: a\nwrite_file: []\n";
    expect(checkCloudConfig(text)).toEqual({ ok: false, output: expect.stringContaining("unknown top-level keys") });
  });
  test("a document without the #cloud-config header is rejected", () => {
    expect(checkCloudConfig("hostname: a\n").ok).toBe(false);
  });
});

describe("deriveMac", () => {
  const mac = deriveMac("dev", "lab-lb-1", "private");
  test("valid, unicast, locally administered, QEMU prefix", () => {
    expect(mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(mac.startsWith(`${MAC_PREFIX}:`)).toBe(true);
    const first = parseInt(mac.slice(0, 2), 16);
    expect(first & 1).toBe(0);
    expect(first & 2).toBe(2);
  });
  test("stable across calls, different per stack, VM and NIC, names kept apart", () => {
    expect(deriveMac("dev", "lab-lb-1", "private")).toBe(mac);
    const others = [
      deriveMac("dev", "lab-lb-2", "private"),
      deriveMac("dev", "lab-lb-1", "public"),
      deriveMac("prod", "lab-lb-1", "private"),
      deriveMac("dev-lab", "lb-1", "private"),
      deriveMac("dev", "lab", "lb-1-private"),
    ];
    expect(new Set([mac, ...others]).size).toBe(others.length + 1);
  });
  test("an empty name is an error naming it", () => {
    expect(() => deriveMac("dev", "", "private")).toThrow("vm: must not be empty");
  });
});

describe("agent settings", () => {
  test("defaults fill every secret path", () => {
    const s = parseAgentSettings({
      imageRef: IMAGE,
      cluster: {
        apiServers: ["https://10.0.0.1:6443"],
        tlsServerName: "api.lab.example.com",
        namespace: "edgepair",
        loadBalancerName: "lab",
      },
    });
    expect(s.metricsPasswordFile).toBe(AGENT_SECRET_DEFAULTS.metricsPasswordFile);
    expect(s.registryAuthFile).toBe("/etc/ostree/auth.json");
    expect(s.cluster?.tokenFile).toBe("/etc/edgepair/secrets/cluster-token");
  });
  test("the cluster block is optional (two-phase flow)", () => {
    expect(validateAgentSettings({ imageRef: IMAGE }).ok).toBe(true);
  });
  test.each([
    ["https://[2001:db8::10]:6443", true],
    ["https://api-int.lab.example.com:6443", true],
    ["https://10.0.0.1", true],
    ["http://10.0.0.1:6443", false],
    ["https://10.0.0.1:6443/api", false],
    ["https://10.0.1:6443", false],
    ["https://user@10.0.0.1:6443", false],
    ["https://10.0.0.1:70000", false],
    ["https://[10.0.0.1]:6443", false],
  ])("apiServers %s -> %s", (url, ok) => {
    const r = validateAgentSettings({
      imageRef: IMAGE,
      cluster: {
        apiServers: [url],
        tlsServerName: "api.lab.example.com",
        namespace: "edgepair",
        loadBalancerName: "lab",
      },
    });
    expect(r.ok).toBe(ok);
  });
  test("bad settings name each field and its rule", () => {
    const r = validateAgentSettings({
      imageRef: "quay.io/edgepair/lb:latest",
      metricsPasswordFile: "relative/path",
      registryAuthFile: AGENT_SECRET_DEFAULTS.metricsPasswordFile,
      cluster: {
        apiServers: [],
        tlsServerName: "API_BAD",
        caCertificate: "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
        namespace: "Edge",
        loadBalancerName: "lab",
        extra: 1,
      },
    });
    expect(r.ok).toBe(false);
    const lines = r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.rule}`);
    expect(lines).toEqual(
      expect.arrayContaining([
        "imageRef: must be an image reference pinned by digest: REPOSITORY@sha256:<64 hex>",
        expect.stringMatching(/^metricsPasswordFile: must be an absolute file path/),
        "cluster.apiServers: must have at least 1 item",
        "cluster.tlsServerName: must be a DNS name such as api.lab.example.com",
        expect.stringMatching(/^cluster\.caCertificate: must be one or more PEM certificates/),
        "cluster.namespace: must be a Kubernetes namespace name (DNS label)",
        "cluster.extra: unknown field",
      ]),
    );
  });
  test("two secrets on one path are an error", () => {
    const r = validateAgentSettings({ imageRef: IMAGE, registryAuthFile: AGENT_SECRET_DEFAULTS.metricsPasswordFile });
    expect(r.ok ? [] : r.problems).toEqual([
      { path: "registryAuthFile", rule: "must differ from metricsPasswordFile" },
    ]);
  });
  test("a CA bundle of real certificates is accepted", () => {
    const r = validateAgentSettings({
      imageRef: IMAGE,
      cluster: { ...agentFor(devSpecRaw() as LoadBalancerSpecInput).cluster!, caCertificate: caPem + caPem },
    });
    expect(r.ok).toBe(true);
  });
});

describe.each(variantsByHost)("user-data $label", ({ raw, host }) => {
  const spec = raw as LoadBalancerSpecInput;

  test("with secrets: passes cloud-init schema; files parse back to the inputs; secrets are 0600", () => {
    const input = inputFor(spec, host, SECRETS);
    const { textWithSecrets, secretFiles } = renderUserData(input);
    const doc = accepted(textWithSecrets);

    expect(doc.hostname).toBe(host.hostname);
    expect(doc.preserve_hostname).toBe(false);
    expect(doc.ssh_pwauth).toBe(false);
    expect(doc.disable_root).toBe(true);
    expect(doc.ssh_authorized_keys).toEqual([SSH_KEY]);
    expect(doc.runcmd).toEqual([[...BOOTSTRAP_COMMAND]]);
    expect(Object.keys(doc).sort()).toEqual([
      "disable_root",
      "hostname",
      "preserve_hostname",
      "runcmd",
      "ssh_authorized_keys",
      "ssh_pwauth",
      "write_files",
    ]);

    for (const p of Object.values(BOOTSTRAP_PATHS))
      expect(fileAt(doc, p)).toMatchObject({ owner: "root:root", permissions: "0644" });
    expect(parse(fileAt(doc, BOOTSTRAP_PATHS.spec).content)).toEqual(raw);
    expect(parse(fileAt(doc, BOOTSTRAP_PATHS.host).content)).toEqual(host);
    expect(parse(fileAt(doc, BOOTSTRAP_PATHS.agent).content)).toEqual(parseAgentSettings(input.agent));

    const secretPaths = {
      clusterToken: "/etc/edgepair/secrets/cluster-token",
      metricsPassword: "/etc/edgepair/secrets/metrics-password",
      registryAuth: "/etc/ostree/auth.json",
    };
    expect(secretFiles.map((f) => [f.secret, f.path, f.mode])).toEqual(
      Object.entries(secretPaths).map(([k, p]) => [k, p, 0o600]),
    );
    for (const [k, p] of Object.entries(secretPaths)) {
      expect(fileAt(doc, p)).toEqual({
        path: p,
        owner: "root:root",
        permissions: "0600",
        content: SECRETS[k as keyof BootstrapSecrets],
      });
    }
    expect(doc.write_files).toHaveLength(6);
  });

  test("without secrets: no secret file, no secret value, still valid", () => {
    const input = inputFor(spec, host);
    const { textWithSecrets, secretFiles } = renderUserData(input);
    expect(secretFiles).toEqual([]);
    expect(listSecretFiles(input)).toEqual([]);
    for (const s of SECRET_VALUES) expect(textWithSecrets).not.toContain(s);
    const doc = accepted(textWithSecrets);
    expect(doc.write_files.map((f) => f.path)).toEqual(Object.values(BOOTSTRAP_PATHS));
  });
});

describe("user-data", () => {
  test("the view names every secret file but holds no secret value, and is itself valid", () => {
    for (const v of variants) {
      const input = inputFor(v.raw as LoadBalancerSpecInput, hosts[0]!, SECRETS);
      const view = renderUserDataView(input);
      for (const s of SECRET_VALUES) expect(view).not.toContain(s);
      for (const f of listSecretFiles(input)) expect(view).toContain(f.path);
      expect(view).toContain("<secret clusterToken: value not shown>");
      expect(renderUserData(input).textWithSecrets).toContain(SECRETS.clusterToken);
    }
    const doc = accepted(renderUserDataView(devInput()));
    expect(fileAt(doc, "/etc/ostree/auth.json").permissions).toBe("0600");
  });

  test("listSecretFiles follows the paths in the agent settings and carries no values", () => {
    const input = devInput({
      secrets: { metricsPassword: SECRETS.metricsPassword },
      agent: { imageRef: IMAGE, metricsPasswordFile: "/run/edgepair/mp" },
    });
    expect(listSecretFiles(input)).toEqual([
      { secret: "metricsPassword", path: "/run/edgepair/mp", mode: 0o600, owner: "root:root" },
    ]);
    expect(JSON.stringify(listSecretFiles(input))).not.toContain(SECRETS.metricsPassword);
  });

  test("values YAML 1.1 would retype reach cloud-init unchanged", () => {
    // Loaded by cloud-init's own loader (the schema itself is covered per variant above).
    for (const pw of ["yes", "on", "0600", "1:20", "~", " leading space", "a: b", "null"]) {
      const doc = loadAsCloudInit(
        renderUserData(devInput({ secrets: { metricsPassword: pw } })).textWithSecrets,
      ) as Loaded;
      expect(fileAt(doc, "/etc/edgepair/secrets/metrics-password").content).toBe(pw);
    }
    const yesHost = { ...hosts[0]!, hostname: "yes", publicInterface: { name: "eth0", mac: "52:54:00:12:34:56" } };
    const doc = accepted(renderUserData(devInput({ host: yesHost, hostname: "yes" })).textWithSecrets);
    expect(doc.hostname).toBe("yes");
    // host.yaml read by a YAML 1.1 reader too: an all-digit MAC stays a string, not a sexagesimal number.
    expect(loadAsCloudInit(fileAt(doc, BOOTSTRAP_PATHS.host).content)).toEqual(yesHost);
  });

  test("deterministic: same input byte-identical, whatever the spec's key order", () => {
    const reorder = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(reorder)
        : typeof v === "object" && v !== null
          ? Object.fromEntries(
              Object.entries(v)
                .reverse()
                .map(([k, x]) => [k, reorder(x)]),
            )
          : v;
    const a = renderUserData(devInput()).textWithSecrets;
    expect(renderUserData(devInput()).textWithSecrets).toBe(a);
    expect(
      renderUserData(devInput({ spec: checkSpec(reorder(devSpecRaw()) as LoadBalancerSpecInput) })).textWithSecrets,
    ).toBe(a);
  });

  test("bad host and settings: every problem as `field: rule`, nothing produced (the spec was checked before)", () => {
    const lines = problemsOf(() =>
      renderUserData(
        devInput({
          host: { ...hosts[0]!, publicInterface: { name: "eth0", mac: "52:54:00:ZZ:00:01" } },
          agent: { imageRef: "quay.io/edgepair/lb:latest" },
          sshAuthorizedKeys: ["not a key"],
          hostname: "other",
          secrets: {
            clusterToken: `${SECRETS.clusterToken}\n`,
            metricsPassword: SECRETS.metricsPassword,
            registryAuth: "{}",
          },
        }),
      ),
    );
    expect(lines).toEqual(
      expect.arrayContaining([
        "host.publicInterface.mac: must be a MAC address in lowercase aa:bb:cc:dd:ee:ff form",
        "agent.imageRef: must be an image reference pinned by digest: REPOSITORY@sha256:<64 hex>",
        "sshAuthorizedKeys[0]: must be one OpenSSH public key line: TYPE BASE64 [COMMENT]",
        "secrets.clusterToken: must be a non-empty token without spaces or line breaks",
        'secrets.registryAuth: must be containers-auth.json text: a JSON object with an "auths" mapping',
      ]),
    );
    for (const s of SECRET_VALUES) expect(lines.join("\n")).not.toContain(s);
  });

  test("cross-field rules: hostname, token without cluster, API server on a VIP, missing settings", () => {
    expect(problemsOf(() => renderUserData(devInput({ hostname: "lab-lb-2" })))).toEqual([
      "hostname: must equal host.hostname",
    ]);
    expect(problemsOf(() => renderUserData(devInput({ agent: { imageRef: IMAGE } })))).toEqual([
      "secrets.clusterToken: needs agent.cluster (the token is only used to reach the cluster)",
    ]);
    const viaVip = agentFor(devSpecRaw() as LoadBalancerSpecInput);
    viaVip.cluster!.apiServers = ["https://192.168.100.10:6443", "https://192.168.100.100:6443", "https://[::1]:6443"];
    expect(problemsOf(() => renderUserData(devInput({ agent: viaVip })))).toEqual([
      "agent.cluster.apiServers[1]: must be a control-plane address, not an address the load balancers hold",
    ]);
    expect(problemsOf(() => renderUserData(devInput({ agent: {} as AgentSettingsInput })))).toContain(
      "agent.imageRef: is required",
    );
  });

  test(`the OpenStack limit: ${USER_DATA_BYTE_LIMIT} bytes pass, one more fails naming the largest part`, () => {
    // RSA-sized keys (the comment pads the last one to the exact size wanted).
    const keys = (pad: number) =>
      Array.from(
        { length: 60 },
        (_, i) => `ssh-rsa AAAAB3NzaC1yc2E${"Q".repeat(700)} k${i}${i === 59 ? "x".repeat(pad) : ""}`,
      );
    const size = (pad: number) =>
      Buffer.byteLength(renderUserData(devInput({ sshAuthorizedKeys: keys(pad) })).textWithSecrets);
    const base = size(0);
    expect(base).toBeLessThan(USER_DATA_BYTE_LIMIT);
    const fits = USER_DATA_BYTE_LIMIT - base;
    const atLimit = renderUserData(devInput({ sshAuthorizedKeys: keys(fits) })).textWithSecrets;
    expect(Buffer.byteLength(atLimit)).toBe(USER_DATA_BYTE_LIMIT);
    expect(Buffer.from(atLimit).toString("base64").length).toBeLessThanOrEqual(OPENSTACK_USER_DATA_BASE64_LIMIT);
    expect(problemsOf(() => renderUserData(devInput({ sshAuthorizedKeys: keys(fits + 1) })))).toEqual([
      expect.stringMatching(
        new RegExp(
          `^user-data: must be at most ${USER_DATA_BYTE_LIMIT} bytes .* is ${USER_DATA_BYTE_LIMIT + 1} bytes; largest parts: ssh_authorized_keys \\d+ bytes`,
        ),
      ),
    ]);
  });

  test("a spec too large for user-data is named as the largest part", () => {
    const raw = devSpecRaw();
    raw.network = { cidr: "10.0.0.0/16" };
    raw.virtualAddresses = { api: [{ address: "10.0.255.100", type: "private" }] };
    delete raw.ingressBackend;
    raw.apiBackend = {
      addresses: Array.from({ length: 3000 }, (_, i) => `10.0.${Math.floor(i / 250) + 1}.${(i % 250) + 1}`),
    };
    const input = devInput({ spec: checkSpec(raw as LoadBalancerSpecInput), agent: { imageRef: IMAGE }, secrets: {} });
    expect(problemsOf(() => renderUserData(input))).toEqual([
      expect.stringMatching(
        /^user-data: must be at most 49149 bytes \(OpenStack accepts 65535 base64 characters\), is \d+ bytes; largest parts: \/etc\/edgepair\/spec\.yaml \d+ bytes/,
      ),
    ]);
  });
});

describe("meta-data", () => {
  test("instance-id depends on the stack and VM only, so a changed user-data never re-runs cloud-init", () => {
    const md = renderMetaData({ stack: "dev", vm: "lab-lb-1", hostname: "lab-lb-1" });
    expect(loadAsCloudInit(md)).toEqual({ "instance-id": "edgepair-dev-lab-lb-1", "local-hostname": "lab-lb-1" });
    // Two different user-data documents for the same VM: the meta-data (and its instance-id) is the same text.
    expect(renderUserData(devInput()).textWithSecrets).not.toBe(
      renderUserData(devInput({ secrets: {} })).textWithSecrets,
    );
    expect(renderMetaData({ stack: "dev", vm: "lab-lb-1", hostname: "lab-lb-1" })).toBe(md);
    expect(instanceId("dev", "lab-lb-2")).not.toBe(instanceId("dev", "lab-lb-1"));
    expect(instanceId("prod", "lab-lb-1")).not.toBe(instanceId("dev", "lab-lb-1"));
  });
  test("bad names are errors naming the field", () => {
    expect(() => instanceId("dev", "a/b")).toThrow(/^vm: must be 1-63/);
    expect(() => renderMetaData({ stack: "dev", vm: "lb1", hostname: "Bad_Host" })).toThrow(
      /^hostname: must be a DNS label/,
    );
  });
});
