/**
 * End to end on real VMs (issue 11): the project's own program (index.ts → EdgePair) on libvirt through the real
 * engine, against a private libvirtd, with the stand-in image (lab/standin-image) as the LBs' base disk. The LBs are
 * configured only by our user-data (real cloud-init at first boot) and our agent; a cluster-node VM made by the test
 * sits on the private network behind the gateway VIP; a real API server on the host plays the cluster. After the
 * failover and a day-2 change, the LB that died is replaced (`pulumi up --replace`) while clients run, and the secrets
 * are rotated over SSH (issue 17).
 *
 * Opt-in: EDGEPAIR_E2E=1, as root (about 9 min under TCG on 2 cores with the stand-in cached; see README "End to
 * end on real VMs").
 *
 * ClusterAccess (the CRD, the LoadBalancer, the agent's RBAC and token) is the stack's own: phase two sets
 * `edgepair:clusterAccess` and the secret `edgepair:kubeconfig` and runs `pulumi up`, which creates them through the
 * real Kubernetes provider (tools/engines: pulumi-resource-kubernetes) without touching a VM; the day-2 spec change is
 * one `pulumi up` that updates both LBs' rendered views and that LoadBalancer in place, and the agents apply it.
 *
 * What cannot run here, and what stands in for it: SecretDelivery (phase two's delivery of the agent's settings and
 * token to VMs that booted without them, and the rotation) needs @pulumi/command's plugin, whose provider module the
 * module proxy refuses (tools/engines/README.md): the test runs SecretDelivery's own script (deliveryScript) over
 * real SSH, `sudo sh -c`, the secrets on stdin, one LB after the other, as the command resource would.
 *
 * Under TCG, three emulated guests on 2 cores cannot hold 0.1 s adverts: the spec uses the TCG VRRP profile
 * (advertInterval 1 s) and the failover goal follows from it (failoverGoalSeconds). With KVM the spec's defaults
 * and the DESIGN goal apply.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { guestAccel } from "../lab/standin-image/boot";
import { buildStandinImage } from "../lab/standin-image/builder";
import { deliveryCommand, secretsStdin } from "../components/secret-delivery";
import { agentNames, CRD_NAME } from "../k8s";
import { METRICS_USER } from "../k8s/scrape-config";
import { resolveBackends } from "../spec/backend-list";
import { resolveSpec } from "../spec/resolve";
import type { AgentSettingsInput } from "../spec/agent-settings";
import type { HostFacts, ResolvedSpec, Role } from "../spec/types";
import { FLOATING_IP_INTERFACE } from "../spec/types";
import { PulumiWorkspace } from "./engine/pulumi-program";
import { adminCall, attachAgentCluster, type AgentCluster } from "./fixtures/agent-cluster";
import { ClusterNode, createClusterNode, NODE_TLS_NAME } from "./fixtures/e2e/cluster-node";
import {
  probe,
  probeNode,
  startEgressEndpoint,
  startHoldEndpoint,
  startTcpForward,
  type EgressEndpoint,
  type HoldEndpoint,
  type Listening,
  type NodeReply,
} from "./fixtures/e2e/host-side";
import { expectedActiveZones, parseActiveZones, parseIpv4Addresses, serverStates } from "./fixtures/e2e/lb-facts";
import { makeSshKey, sshMust, sshRun, waitForSsh, type SshKey } from "./fixtures/e2e/ssh";
import { startKubeApiServer, type KubeApiServer } from "./fixtures/kube-apiserver";
import { Libvirtd, startLibvirtd } from "./fixtures/libvirtd";
import { stackProgramFiles } from "./fixtures/stack-program";
import { devSpecRaw } from "./fixtures/variants";

const MINUTE = 60_000;
const E2E = process.env.EDGEPAIR_E2E === "1" && process.getuid?.() === 0;
const e2e = E2E ? describe : describe.skip;
const title = E2E
  ? "end to end on real VMs"
  : "end to end on real VMs (skipped: opt-in with EDGEPAIR_E2E=1 as root; boots two LBs and a node under libvirt, ~9 min under TCG)";

jest.setTimeout(60 * MINUTE);

const IMAGE = `registry.example/edgepair/appliance@sha256:${"e".repeat(64)}`;
const METRICS = "e2e-metrics-password-0815";
const metricsAuth = (password: string): string => `${METRICS_USER}:${password}`;
const NODE = { name: "e2e-node", mac: "52:54:00:e2:e0:10", addresses: ["192.168.100.10/24", "192.168.100.13/24"] };
const ADDED_BACKEND = "192.168.100.13";
/** The TCG VRRP profile: adverts every second instead of every 0.1 s. */
const TCG_ADVERT_INTERVAL = 1;

const started = Date.now();
const step = (msg: string) => process.stderr.write(`[e2e +${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (ms: number) => Math.round(ms / 100) / 10;

/** keepalived's Master_Down_Interval for the BACKUP (RFC 5798: 3 × advert + skew), plus what a failover adds on top
 *  (gratuitous ARP, the first request after it) on an emulated machine: 2 s. */
function failoverGoalSeconds(advert: number, backupPriority: number): number {
  return 3 * advert + ((256 - backupPriority) / 256) * advert + 2;
}

async function waitUntil<T>(
  what: string,
  timeoutMs: number,
  every: number,
  f: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(every);
  }
}

let dir: string;
let lv: Libvirtd;
let kube: KubeApiServer;
let cluster: AgentCluster;
let ws: PulumiWorkspace;
let key: SshKey;
let node: ClusterNode | undefined;
let forward: Listening | undefined;
let egress: EgressEndpoint | undefined;
let spec: ResolvedSpec;
let rawSpec: Record<string, any>;
let nodeStartedAt = 0;
/** KVM only when the stand-in's own kernel runs under it here (guestAccel), else TCG (libvirt's type="qemu"). */
let kvm = false;
/** The agent settings SecretDelivery brings (set when the cluster is reachable from the LBs). */
let agentSettings: AgentSettingsInput | undefined;
const deliveredAgent = (): AgentSettingsInput => {
  if (!agentSettings) throw new Error("no agent settings yet");
  return agentSettings;
};
let hold: HoldEndpoint | undefined;
/** Output of a command (its exit code ignored): arping exits 1 when nobody answers. */
function execFileText(file: string, args: string[]): Promise<string> {
  return new Promise((resolve) => execFile(file, args, { timeout: 5000 }, (_e, stdout) => resolve(String(stdout))));
}
/** The LB left running after the failover step. */
let survivorIndex: number | undefined;
const figures: Record<string, number | string> = {};

/** The LBs' host facts as the stack settled them (its loadBalancers output; NIC names are EdgePair's defaults). */
let lbHosts: HostFacts[] = [];
const lbPublic = (i: number) => spec.platform.publicNetwork.lbAddresses[i] as string;
const lbPrivate = (i: number) => spec.network.lbAddresses[i] as string;
const lbIndexOf = (privateAddress: string) => spec.network.lbAddresses.indexOf(privateAddress);

const apiPrivateVip = () => spec.virtualAddresses.api.find((v) => v.type === "private")!.address;
const vipUrls = () => ({
  apiPrivate: `https://${apiPrivateVip()}:6443/`,
  apiPublic: `https://${spec.virtualAddresses.api.find((v) => v.type === "public")!.address}:6443/`,
  ingressHttp: `http://${spec.virtualAddresses.ingress[0]!.address}:80/`,
  ingressHttps: `https://${spec.virtualAddresses.ingress[0]!.address}:443/`,
});
const tlsOpts = () => ({ ca: node!.certPem, servername: NODE_TLS_NAME, timeoutMs: 2000 });
const probeVip = (url: string) => probeNode(url, url.startsWith("https") ? tlsOpts() : { timeoutMs: 2000 });

/** The steps build on each other: after one fails, the rest fail at once instead of waiting out their bounds. */
let failedStep: string | undefined;
function stage(name: string, fn: () => Promise<void>): void {
  test(name, async () => {
    if (failedStep) throw new Error(`not run: "${failedStep}" failed before`);
    try {
      await fn();
    } catch (e) {
      failedStep = name;
      throw e;
    }
  });
}

e2e(title, () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "edgepair-e2e-"));
    step("stand-in image (lab/standin-image; cached by its inputs)");
    const image = await buildStandinImage({ out: (l) => step(l) });
    figures.standinImageCached = String(image.cached);
    const accel = await guestAccel(image.path, dir, { memo: image.accelMemo });
    kvm = accel.accel === "kvm";
    figures.accel = accel.accel;
    step(accel.why);
    lv = await startLibvirtd();
    step("private libvirtd up; copying the stand-in into its pool");
    copyFileSync(image.path, join(lv.poolDir, "standin.qcow2"));
    lv.virsh(["pool-refresh", lv.pool]);

    rawSpec = devSpecRaw() as Record<string, any>;
    if (!kvm) rawSpec.vrrp = { ...(rawSpec.vrrp ?? {}), advertInterval: TCG_ADVERT_INTERVAL };
    spec = resolveSpec(rawSpec);
    figures.advertIntervalSeconds = spec.vrrp.advertIntervalSeconds;

    step("API server (etcd, kube-apiserver, controller manager); its objects come from the stack in phase two");
    kube = await startKubeApiServer();

    key = makeSshKey(dir);
    ws = await PulumiWorkspace.create({
      name: "edgepair",
      stack: "e2e",
      timeoutMs: 40 * MINUTE,
      files: stackProgramFiles(
        {
          "edgepair:spec": rawSpec,
          "edgepair:libvirtUri": lv.uri,
          "edgepair:libvirtPool": lv.pool,
          "edgepair:libvirtBaseImage": "standin.qcow2",
          "edgepair:image": IMAGE,
          "edgepair:vmMemoryMiB": 1024,
          "edgepair:vmVcpus": 1,
          // libvirt's auto would take KVM wherever it is reported, a PVM host included
          "edgepair:libvirtDomainType": kvm ? "kvm" : "qemu",
          "edgepair:sshAuthorizedKeys": [key.publicKey],
          // the real gate: the second LB is created only once the first one's HAProxy answers
          "edgepair:waitForReady": true,
        },
        "e2e",
      ),
    });
    await ws.setConfig("edgepair:metricsPassword", METRICS, { secret: true });
  });

  afterAll(async () => {
    // every step runs whatever the one before it threw: what was started is stopped, also on failure
    const attempt = async (what: string, f: () => unknown) => {
      try {
        await f();
      } catch (e) {
        console.error(`clean-up, ${what}: ${e}`);
      }
    };
    await attempt("figures", printFigures);
    await attempt("TCP forward", () => forward?.close());
    await attempt("egress endpoint", () => egress?.close());
    await attempt("hold endpoint", () => hold?.close());
    if (process.env.EDGEPAIR_E2E_KEEP === "1") {
      lv?.detach();
      step(
        `kept until the next test run that starts a libvirtd: libvirt ${lv?.uri} (its daemons, domains and networks), Pulumi workspace ${ws?.root}`,
      );
      return;
    }
    await attempt("cluster node", () => node?.remove());
    await attempt("Pulumi workspace", () => ws?.dispose());
    await attempt("libvirtd", async () => {
      const report = await lv?.stop();
      if (report && report.leftovers.length > 0)
        step(`libvirtd fixture removed leftovers: ${report.leftovers.join(", ")}`);
    });
    await attempt("API server", () => kube?.stop());
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  stage(
    "pulumi up boots both LBs from our user-data (the second after the first serves) and the cluster node behind the gateway VIP",
    async () => {
      const domainSeen: Record<string, number> = {};
      const healthy: Record<string, number> = {};
      // the look (once a second) in which each was first seen: times alone cannot order two events of one look
      const look = { now: 0, lb2Running: Infinity, lb1Answered: Infinity };
      let upDoneAt: number | undefined;
      const upStarted = Date.now();
      // `up` ends right after its ready gate saw the second LB answer, which can be before this loop's next look (a CI
      // run lost it so): after `up`, the loop looks on until both LBs answered, for a minute at most
      const watching = () =>
        Date.now() - upStarted < 40 * MINUTE &&
        (upDoneAt === undefined ||
          (Date.now() - upDoneAt < MINUTE && (healthy[0] === undefined || healthy[1] === undefined)));
      // beside `up`: when each domain runs, when each LB's HAProxy first answers, and the node once its network exists
      const watcher = (async () => {
        let nodeStarted = false;
        while (watching()) {
          look.now++;
          for (const name of lv
            .tryVirsh(["list", "--name"])
            .stdout.split("\n")
            .map((s) => s.trim())
            .filter(Boolean)) {
            if (domainSeen[name] === undefined) {
              domainSeen[name] = Date.now();
              if (name === `${spec.clusterName}-lb2`) look.lb2Running = look.now;
              step(`domain ${name} running`);
            }
          }
          for (let i = 0; i < 2; i++) {
            if (healthy[i] !== undefined) continue;
            // the look that first sees LB 2 running decides the gate's assertion: a slow answer from LB 1 must not fail it
            const timeoutMs = i === 0 && look.lb2Running === look.now ? 5000 : 1000;
            const ok = await probe(`http://${lbPrivate(i)}:${spec.metrics.port}/healthz`, { timeoutMs }).then(
              (r) => r.status === 200,
              () => false,
            );
            if (ok) {
              healthy[i] = Date.now();
              if (i === 0) look.lb1Answered = look.now;
              step(`LB ${i + 1}: HAProxy answers its monitor URI`);
            }
          }
          // both networks: libvirt creates its dnsmasq state directory with the first network that has one (the public)
          const active = (net: string) =>
            /Active:\s+yes/.test(lv.tryVirsh(["net-info", `${spec.clusterName}-net-${net}`]).stdout);
          if (!nodeStarted && active("private") && active("public")) {
            nodeStarted = true;
            node = await createClusterNode({
              lv,
              name: NODE.name,
              baseVolume: "standin.qcow2",
              network: `${spec.clusterName}-net-private`,
              mac: NODE.mac,
              addresses: NODE.addresses,
              gateway: spec.network.gateway,
              sshPublicKey: key.publicKey,
              workDir: dir,
              memoryMiB: 768,
              virtType: kvm ? "kvm" : "qemu",
            });
            domainSeen[NODE.name] = nodeStartedAt = Date.now();
            step("cluster node defined and started on the private network");
          }
          await sleep(1000);
        }
      })();
      step("pulumi up");
      try {
        await ws.up();
      } finally {
        upDoneAt = Date.now();
        await watcher;
      }
      figures.upSeconds = seconds(upDoneAt - upStarted);
      const summaries = (await ws.outputs()).loadBalancers as {
        role: Role;
        hostname: string;
        publicMac: string;
        privateMac: string;
      }[];
      lbHosts = summaries.map((l) => ({
        hostname: l.hostname,
        role: l.role,
        publicInterface: { name: "enp1s0", mac: l.publicMac },
        privateInterface: { name: "enp2s0", mac: l.privateMac },
      }));
      expect(lbHosts.map((h) => h.hostname)).toEqual([`${spec.clusterName}-lb-1`, `${spec.clusterName}-lb-2`]);
      step(`pulumi up done in ${figures.upSeconds} s`);
      for (let i = 0; i < 2; i++) {
        const vm = `${spec.clusterName}-lb${i + 1}`;
        expect(domainSeen[vm]).toBeDefined();
        expect(healthy[i]).toBeDefined();
        figures[`lb${i + 1}BootToHaproxySeconds`] = seconds(healthy[i]! - domainSeen[vm]!);
      }
      // the ready gate: the second LB's domain starts only after the first one's HAProxy answered. Each look lists the
      // domains before it asks the LBs, so with the gate LB 1 answers in the look that first sees LB 2's domain running
      // (a CI run failed comparing times: the look saw the domain, then LB 1's first answer, 9 ms apart). Without the
      // gate LB 2 starts ~100 s before LB 1 answers.
      expect(look.lb1Answered).toBeLessThanOrEqual(look.lb2Running);
      expect(node).toBeDefined();
      expect(lv.inventory().domains.sort()).toEqual(
        [NODE.name, `${spec.clusterName}-lb1`, `${spec.clusterName}-lb2`].sort(),
      );

      for (let i = 0; i < 2; i++) {
        await waitForSsh(key, lbPublic(i), 5 * MINUTE);
        // cloud-init consumed our user-data without an error, and nothing failed at boot
        const status = await sshRun(
          key,
          lbPublic(i),
          "cloud-init status --long; systemctl --failed --no-legend --plain; systemd-analyze time | head -1",
          { timeoutMs: 60_000 },
        );
        step(`LB ${i + 1}:\n${status.stdout.trim()}`);
        expect(status.stdout).toMatch(/status: done/);
        expect(status.stdout).not.toMatch(/\.service\s+loaded\s+failed/);
        figures[`lb${i + 1}SystemdAnalyze`] = status.stdout.match(/Startup finished in .*/)?.[0] ?? "";
        expect(await sshMust(key, lbPublic(i), "sudo test -f /var/lib/edgepair/bootstrapped && hostname")).toBe(
          `${lbHosts[i]!.hostname}\n`,
        );
      }
      // where an LB's boot goes (for the note; nothing asserted): the slowest units, the chain to multi-user.target and
      // the agent's bootstrap table
      const boot = await sshRun(
        key,
        lbPublic(0),
        "systemd-analyze blame --no-pager | head -12; systemd-analyze critical-chain --no-pager; sudo journalctl -b -u edgepair-bootstrap -o short-monotonic --no-pager | tail -40",
        { timeoutMs: 60_000 },
      );
      step(`LB 1 boot, slowest units, critical chain, bootstrap:\n${boot.stdout.trim()}`);
    },
  );

  stage(
    "the API and ingress VIPs answer through the active LB; ingress needs the agent, which gets the cluster through the token delivery",
    async () => {
      const urls = vipUrls();
      const api = await waitUntil("the API VIP to answer through an LB", 10 * MINUTE, 2000, () =>
        probeVip(urls.apiPrivate),
      );
      figures.nodeStartToApiVipSeconds = seconds(Date.now() - nodeStartedAt);
      step(`API VIP answers: ${JSON.stringify(api)}`);
      expect(api.role).toBe("api");
      expect(spec.network.lbAddresses).toContain(api.remote);
      const pub = await waitUntil("the public API VIP", MINUTE, 1000, () => probeVip(urls.apiPublic));
      expect(pub.remote).toBe(api.remote);
      // no worker backends before the agent sees the cluster's Nodes (the spec has no static ingress addresses)
      expect(await probeVip(urls.ingressHttp)).toBeUndefined();

      step("phase two: ClusterAccess through the stack's own `pulumi up` (the real Kubernetes provider)");
      forward = await startTcpForward(hostPrivateAddress(), 0, {
        host: "127.0.0.1",
        port: Number(new URL(kube.server).port),
      });
      const stackFile = join(ws.projectDir, `Pulumi.${ws.stack}.yaml`);
      const stackConfig = parse(readFileSync(stackFile, "utf8")) as { config: Record<string, unknown> };
      stackConfig.config["edgepair:clusterAccess"] = {
        apiServers: [`https://${hostPrivateAddress()}:${forward.port}`],
        tlsServerName: "kubernetes",
        caCertificate: kube.caPem,
      };
      writeFileSync(stackFile, stringify(stackConfig));
      await ws.setConfig("edgepair:kubeconfig", kube.adminKubeConfig, { secret: true });
      const accessUp = Date.now();
      const up = await ws.up();
      figures.clusterAccessUpSeconds = seconds(Date.now() - accessUp);
      // the cluster's objects only: user-data is create-only, so no VM is replaced or changed for the token
      expect(up.summary.resourceChanges).not.toHaveProperty("replace");
      expect(up.summary.resourceChanges).not.toHaveProperty("delete");
      expect(up.summary.resourceChanges.create).toBeGreaterThanOrEqual(10);
      cluster = await attachAgentCluster(kube, { name: spec.clusterName });
      expect(`${up.stdout}${up.stderr}`).not.toContain(cluster.token);
      expect((await ws.exportState()).text).not.toContain(cluster.token);
      // the node serves ingress on its NodePorts: a worker Node, as its kubelet would register it
      await cluster.putNode(NODE.name, { "node-role.kubernetes.io/worker": "" }, NODE.addresses[0]!.split("/")[0]!);

      step("phase two: the agent's cluster settings and token, over SSH, one LB after the other");
      const agent: AgentSettingsInput = (agentSettings = {
        imageRef: IMAGE,
        cluster: {
          apiServers: [`https://${hostPrivateAddress()}:${forward.port}`],
          tlsServerName: "kubernetes",
          caCertificate: kube.caPem,
          namespace: cluster.namespace,
          loadBalancerName: spec.clusterName,
        },
      });
      const delivered = Date.now();
      for (let i = 0; i < 2; i++) {
        const r = await sshRun(key, lbPublic(i), deliveryCommand(agent), {
          input: secretsStdin({ clusterToken: cluster.token }),
          timeoutMs: 60_000,
        });
        expect(r).toMatchObject({ code: 0 });
        const files = await sshMust(
          key,
          lbPublic(i),
          "sudo stat -c '%a %n' /etc/edgepair/secrets/cluster-token /etc/edgepair/agent.yaml",
        );
        expect(files).toBe("600 /etc/edgepair/secrets/cluster-token\n644 /etc/edgepair/agent.yaml\n");
      }
      const ingress = await waitUntil(
        "ingress through the VIP (the agent added the worker Node)",
        5 * MINUTE,
        1000,
        () => probeVip(urls.ingressHttp),
      );
      figures.tokenDeliveryToIngressSeconds = seconds(Date.now() - delivered);
      expect(ingress).toMatchObject({ role: "ingress", local: NODE.addresses[0]!.split("/")[0] });
      expect(await waitUntil("ingress https", MINUTE, 1000, () => probeVip(urls.ingressHttps))).toMatchObject({
        role: "ingress",
      });
      // both agents report in the CR's status
      const lbs = await waitUntil("both LBs in the LoadBalancer's status", 5 * MINUTE, 2000, async () => {
        const body = (await cluster.must("GET", cluster.lbPath)).body as {
          status?: { loadBalancers?: { name: string }[] };
        };
        const names = (body.status?.loadBalancers ?? []).map((l) => l.name).sort();
        return names.length === 2 ? names : undefined;
      });
      figures.tokenDeliveryToStatusSeconds = seconds(Date.now() - delivered);
      expect(lbs).toEqual(lbHosts.map((h) => h.hostname));
      // the token never reaches a log on the LB
      for (let i = 0; i < 2; i++) {
        const journal = await sshRun(key, lbPublic(i), "sudo journalctl -b --no-pager -o cat", { timeoutMs: 60_000 });
        expect(journal.stdout.length).toBeGreaterThan(1000);
        expect(journal.stdout).not.toContain(cluster.token);
      }
    },
  );

  stage("firewall-cmd --get-active-zones on each LB shows the zones the rendered keyfiles bind", async () => {
    const backends = resolveBackends(spec, {});
    for (let i = 0; i < 2; i++) {
      const out = await sshMust(key, lbPublic(i), "sudo firewall-cmd --get-active-zones");
      const expected = expectedActiveZones(spec, lbHosts[i]!, backends);
      expect(Object.keys(expected).length).toBe(2);
      expect(expected[Object.keys(expected).find((z) => expected[z]!.includes(FLOATING_IP_INTERFACE))!]).toContain(
        "enp1s0",
      );
      expect(parseActiveZones(out)).toEqual(expected);
      step(`LB ${i + 1} active zones:\n${out.trim()}`);
    }
  });

  stage("the node reaches a host-side endpoint through NAT, with the egress address as source", async () => {
    egress = await startEgressEndpoint(spec.platform.publicNetwork.gateway as string);
    const nodeAddress = NODE.addresses[0]!.split("/")[0]!;
    await waitForSsh(key, nodeAddress, 5 * MINUTE);
    const script = `node -e 'const s=require("net").connect(${egress.port},"${spec.platform.publicNetwork.gateway}");let d="";s.setTimeout(5000,()=>process.exit(3));s.on("data",c=>d+=c);s.on("end",()=>{process.stdout.write(d);process.exit(0)});s.on("error",e=>{console.error(e.message);process.exit(4)})'`;
    const out = await sshMust(key, nodeAddress, script, { timeoutMs: 30_000 });
    expect(JSON.parse(out)).toEqual({ remote: spec.virtualAddresses.nat!.address });
    expect(egress.seen).toEqual([spec.virtualAddresses.nat!.address]);
    // its route: the gateway VIP
    expect(await sshMust(key, nodeAddress, "ip -4 route show default")).toMatch(
      new RegExp(`^default via ${spec.network.gateway.replace(/\./g, "\\.")} `),
    );
  });

  stage("virsh destroy of the active LB moves every VIP to the other within the goal", async () => {
    const urls = vipUrls();
    const before = (await probeVip(urls.apiPrivate))!;
    const active = lbIndexOf(before.remote);
    const survivor = 1 - active;
    const moving = [apiPrivateVip(), spec.network.gateway, spec.platform.publicNetwork.nextHop as string];
    // the BACKUP's NICs hold none of them before (every frontend VIP is also on both LBs' edgepair-fip link)
    for (const a of moving) expect(await nicAddresses(survivor)).not.toContain(a);
    const goal = kvm ? 0.4 : failoverGoalSeconds(spec.vrrp.advertIntervalSeconds, spec.vrrp.priority.secondary);
    step(`active LB ${active + 1}; destroying it (goal ${goal} s)`);
    const fault = Date.now();
    lv.virsh(["destroy", `${spec.clusterName}-lb${active + 1}`]);
    // DESIGN's client: a new connection every 100 ms (bounded: 1200, 2 min), each with its own timeout; the outage
    // ends at the start of the first request after the fault that the survivor answers
    let firstStart: number | undefined;
    const inFlight: Promise<void>[] = [];
    for (let n = 0; n < 1200 && firstStart === undefined; n++) {
      const at = Date.now();
      inFlight.push(
        probeNode(urls.apiPrivate, { ...tlsOpts(), timeoutMs: 3000 }).then((r) => {
          if (r?.remote === lbPrivate(survivor) && (firstStart === undefined || at < firstStart)) firstStart = at;
        }),
      );
      await sleep(100);
    }
    await Promise.all(inFlight);
    expect(firstStart).toBeDefined();
    const outage = (firstStart! - fault) / 1000;
    figures.failoverSeconds = Math.round(outage * 100) / 100;
    figures.failoverGoalSeconds = goal;
    step(`API VIP answers through LB ${survivor + 1} after ${outage.toFixed(2)} s`);
    expect(outage).toBeLessThanOrEqual(goal);
    // every VIP: the private ones and the public next hop are on the survivor's NICs; the public ones answer
    const addrs = await nicAddresses(survivor);
    for (const a of moving) expect(addrs).toContain(a);
    for (const url of [urls.apiPublic, urls.ingressHttp, urls.ingressHttps]) {
      expect(await waitUntil(url, 30_000, 500, () => probeVip(url))).toMatchObject({ remote: lbPrivate(survivor) });
    }
    figures.allVipsOnSurvivorSeconds = seconds(Date.now() - fault);
    // and NAT: the node's egress still leaves as the egress address
    const nodeAddress = NODE.addresses[0]!.split("/")[0]!;
    await sshMust(
      key,
      nodeAddress,
      `node -e 'require("net").connect(${egress!.port},"${spec.platform.publicNetwork.gateway}").on("end",()=>process.exit(0)).on("error",()=>process.exit(4)).resume()'`,
      { timeoutMs: 30_000 },
    );
    expect(egress!.seen.at(-1)).toBe(spec.virtualAddresses.nat!.address);
    survivorIndex = survivor;
  });

  stage(
    "day 2: a backend added reaches HAProxy on the survivor without a reboot and without dropping the VIPs",
    async () => {
      const survivor = survivorIndex as number;
      const bootId = await sshMust(key, lbPublic(survivor), "cat /proc/sys/kernel/random/boot_id");
      // the stack: an in-place update of both rendered views, nothing else
      const next = (rawSpec.apiBackend.addresses as string[]).length;
      await ws.run(["config", "set", "--path", `edgepair:spec.apiBackend.addresses[${next}]`, ADDED_BACKEND]);
      const preview = await ws.previewJson();
      const changed = preview.steps.filter(
        (s) => s.op !== "same" && !s.type.startsWith("pulumi:providers:") && s.type !== "pulumi:pulumi:Stack",
      );
      // both LBs' rendered views and the LoadBalancer, each in place, nothing else
      expect(Object.fromEntries(changed.map((s) => [s.name, s.op]))).toEqual({
        [`${spec.clusterName}-lb1-rendered`]: "update",
        [`${spec.clusterName}-lb2-rendered`]: "update",
        [`${spec.clusterName}-cluster-loadbalancer`]: "update",
      });
      const uid = ((await cluster.must("GET", cluster.lbPath)).body as { metadata: { uid: string } }).metadata.uid;
      const watchFrom = Date.now();
      let failed = 0;
      let requests = 0;
      let stop = false;
      const urls = vipUrls();
      const load = (async () => {
        // bounded: at most 1200 rounds (the wait below ends it sooner)
        for (let n = 0; n < 1200 && !stop; n++) {
          for (const url of [urls.apiPrivate, urls.ingressHttp]) {
            requests++;
            if (!(await probeVip(url))) failed++;
          }
          await sleep(100);
        }
      })();
      // from the start of the stack's own up: the rendered views, and through ClusterAccess the LoadBalancer the
      // agents watch
      const patched = Date.now();
      let served: NodeReply | undefined;
      try {
        await ws.up();
        figures.day2UpSeconds = seconds(Date.now() - patched);
        const lb = (await cluster.must("GET", cluster.lbPath)).body as {
          metadata: { uid: string };
          spec: { apiBackend: { addresses: string[] } };
        };
        expect(lb.metadata.uid).toBe(uid);
        expect(lb.spec.apiBackend.addresses).toContain(ADDED_BACKEND);
        served = await waitUntil(`a request served by ${ADDED_BACKEND}`, 2 * MINUTE, 200, async () => {
          const r = await probeVip(urls.apiPrivate);
          return r?.local === ADDED_BACKEND ? r : undefined;
        });
        figures.backendAddedToServedSeconds = seconds(Date.now() - patched);
        // the VIPs keep answering after the change too: 10 s of requests from the patch on
        await sleep(Math.max(0, patched + 10_000 - Date.now()));
      } finally {
        stop = true;
        await load;
      }
      figures.day2Requests = requests;
      figures.day2Failed = failed;
      expect(served.remote).toBe(lbPrivate(survivor));
      // the stats page and the metrics sit behind the metrics password on the LB's private address
      const statsUrl = `http://${lbPrivate(survivor)}:${spec.metrics.port}/stats;csv`;
      expect((await probe(statsUrl, { timeoutMs: 3000 })).status).toBe(401);
      const csv = (await probe(statsUrl, { timeoutMs: 3000, auth: metricsAuth(METRICS) })).body;
      const metrics = await probe(`http://${lbPrivate(survivor)}:${spec.metrics.port}/metrics`, {
        timeoutMs: 5000,
        auth: metricsAuth(METRICS),
      });
      expect(metrics.status).toBe(200);
      expect(metrics.body).toMatch(/^edgepair_vrrp_state\{.*state="MASTER".*\} 1$/m);
      expect(metrics.body).toMatch(/^edgepair_pool_server_up\{.*\} 1$/m);
      expect(metrics.body).toMatch(/^haproxy_process_/m);
      expect(metrics.body).not.toContain(METRICS);
      // "UP", or "UP 1/3" while a check under emulation was slow: serving either way
      expect(serverStates(csv, "be_api")[ADDED_BACKEND]).toMatch(/^UP\b/);
      expect(await sshMust(key, lbPublic(survivor), "cat /proc/sys/kernel/random/boot_id")).toBe(bootId);
      const addrs = await nicAddresses(survivor);
      for (const a of [apiPrivateVip(), spec.network.gateway, spec.platform.publicNetwork.nextHop as string])
        expect(addrs).toContain(a);
      expect(failed).toBe(0);
      step(
        `day 2: ${ADDED_BACKEND} served ${figures.backendAddedToServedSeconds} s after the start of the stack's up (which took ${figures.day2UpSeconds} s); ${requests} requests in ${seconds(Date.now() - watchFrom)} s, ${failed} failed`,
      );
    },
  );

  stage(
    "replacing the dead LB: `pulumi up --replace` of its VM while clients run; it boots, bootstraps and joins as BACKUP, conntrackd resyncs, its status entry returns, never a duplicate VIP",
    async () => {
      const survivor = survivorIndex as number;
      const dead = 1 - survivor;
      const vm = `${spec.clusterName}-lb${dead + 1}`;
      const nodeAddress = NODE.addresses[0]!.split("/")[0]!;
      const gw = spec.platform.publicNetwork.gateway as string;
      // a long-lived egress flow through the survivor's NAT, opened before the new LB exists: the new BACKUP must learn
      // it from the MASTER (conntrackd -n at its first BACKUP), and it must outlive the replacement
      hold = await startHoldEndpoint(gw);
      await sshMust(
        key,
        nodeAddress,
        `nohup node -e 'const s=require("net").connect(${hold.port},"${gw}");s.on("error",()=>process.exit(4));setInterval(()=>s.write("x\\n"),1000);setTimeout(()=>process.exit(0),900000)' </dev/null >/dev/null 2>&1 &`,
        { timeoutMs: 30_000 },
      );
      await waitUntil("the held egress flow", 30_000, 500, async () =>
        hold!.connections.length === 1 && hold!.connections[0]!.bytes > 0 ? true : undefined,
      );
      expect(hold.connections[0]!.remote).toBe(spec.virtualAddresses.nat!.address);

      // never two MACs answering ARP for a private VIP, asked from the host on the private bridge twice a second
      const bridge = lv
        .virsh(["net-dumpxml", `${spec.clusterName}-net-private`])
        .stdout.match(/<bridge name=['"]([^'"]+)['"]/)?.[1];
      expect(bridge).toBeDefined();
      const arpMacs = new Map<string, Set<string>>();
      let duplicates = 0;
      let arpProbes = 0;
      let stop = false;
      const arpWatch = (async () => {
        for (let n = 0; n < 3000 && !stop; n++) {
          for (const vip of [apiPrivateVip(), spec.network.gateway]) {
            const r = await execFileText("arping", ["-c", "1", "-w", "1", "-I", bridge!, vip]);
            const macs = new Set([...r.matchAll(/\[([0-9A-Fa-f:]{17})\]/g)].map((m) => m[1]!.toLowerCase()));
            arpProbes++;
            if (macs.size > 1) duplicates++;
            for (const m of macs) arpMacs.set(vip, new Set([...(arpMacs.get(vip) ?? []), m]));
          }
          await sleep(500);
        }
      })();
      // the DESIGN client's pace through the API and ingress VIPs, each request a new connection
      let requests = 0;
      let failed = 0;
      const urls = vipUrls();
      const load = (async () => {
        for (let n = 0; n < 6000 && !stop; n++) {
          for (const url of [urls.apiPrivate, urls.ingressHttp]) {
            requests++;
            if (!(await probeVip(url))) failed++;
          }
          await sleep(100);
        }
      })();
      const replaced = Date.now();
      try {
        // the VM's three libvirt resources (not the LbVm component of the same name)
        const urns = (await ws.resources())
          .map((r) => r.urn)
          .filter(
            (u) =>
              u.includes("$pulumi-nodejs:dynamic/libvirt:") &&
              [`::${vm}`, `::${vm}-disk`, `::${vm}-seed`].some((end) => u.endsWith(end)),
          );
        expect(urns).toHaveLength(3);
        step(`pulumi up --replace ${urns.map((u) => u.split("::").at(-1)).join(" ")}`);
        const up = await ws.run([
          "up",
          "--yes",
          "--skip-preview",
          "--color",
          "never",
          "--suppress-progress",
          ...urns.flatMap((u) => ["--replace", u]),
        ]);
        figures.replaceUpSeconds = seconds(Date.now() - replaced);
        // the ready gate after it waited for the new LB's HAProxy: up ends with the new VM serving
        expect(
          (await probe(`http://${lbPrivate(dead)}:${spec.metrics.port}/healthz`, { timeoutMs: 3000 })).status,
        ).toBe(200);
        expect(up.stdout).not.toContain(cluster.token);
        // phase two for the new VM, as SecretDelivery would run it on the same up
        await waitForSsh(key, lbPublic(dead), 5 * MINUTE);
        const r = await sshRun(key, lbPublic(dead), deliveryCommand(deliveredAgent()), {
          input: secretsStdin({ clusterToken: cluster.token }),
          timeoutMs: 60_000,
        });
        expect(r).toMatchObject({ code: 0 });
        // its status entry (same hostname) heartbeats again, and the MASTER reports the pair Redundant
        await waitUntil("Redundant True with the new LB's entry", 5 * MINUTE, 1000, async () => {
          const lb = (await cluster.must("GET", cluster.lbPath)).body as {
            status?: {
              conditions?: { type: string; status: string }[];
              loadBalancers?: { name: string; heartbeat: string }[];
            };
          };
          const entry = lb.status?.loadBalancers?.find((e) => e.name === lbHosts[dead]!.hostname);
          const redundant = lb.status?.conditions?.find((c) => c.type === "Redundant")?.status === "True";
          return entry && Date.parse(entry.heartbeat) > replaced && redundant ? true : undefined;
        });
        figures.replaceToRedundantSeconds = seconds(Date.now() - replaced);
        // it joined as BACKUP: the survivor keeps every VIP on its NICs, the new LB holds none
        const moving = [apiPrivateVip(), spec.network.gateway, spec.platform.publicNetwork.nextHop as string];
        const [onSurvivor, onNew] = [await nicAddresses(survivor), await nicAddresses(dead)];
        // keepalived's own word on each LB since the replacement, kept in the figures whatever happened: a VIP move
        // here is either a FAULT (HAProxy's check failed three times in a row) or a higher-priority advert (the new LB claimed MASTER)
        const since = Math.ceil((Date.now() - replaced) / 1000) + 30;
        /** LB i's journal of these units since the replacement, filtered by the shell command `filter` */
        const journal = (i: number, units: string, filter: string) =>
          sshMust(key, lbPublic(i), `sudo journalctl --no-pager ${units} --since -${since}s | ${filter}`).catch(
            (e: unknown) => `journal unread: ${String(e)}`,
          );
        let survivorEvents = "";
        for (const i of [survivor, dead]) {
          const events = await journal(
            i,
            "-o cat -u keepalived",
            "grep -E 'Entering (MASTER|BACKUP|FAULT)|higher priority|Script\\(haproxy\\)|Script .haproxy. now returning' || true",
          );
          if (i === survivor) survivorEvents = events;
          figures[`replaceVrrp${i === survivor ? "Survivor" : "New"}`] =
            events
              .split("\n")
              .map((l) => l.trim())
              .filter((l) => l !== "")
              .slice(-12)
              .join("; ") || "none";
        }
        const misplaced = moving.filter((a) => !onSurvivor.includes(a) || onNew.includes(a));
        if (misplaced.length > 0) {
          // what each LB's keepalived and agent did since the replacement, to tell why the VIPs moved: in the failure
          // message itself, which CI keeps (a step line before it may be cut from CI's excerpt)
          const journals: string[] = [];
          for (const i of [survivor, dead]) {
            const log = await journal(
              i,
              "-o short-monotonic -u keepalived -u edgepair-agent",
              "grep -iE 'vrrp|state|keepalived|quiet|hands|apply|risky' | tail -25",
            );
            journals.push(`LB ${i + 1} (${i === survivor ? "survivor" : "new"}):\n${log}`);
          }
          throw new Error(
            `after the replacement ${misplaced.join(", ")} not on the survivor alone (survivor: ${onSurvivor.join(" ")}; new: ${onNew.join(" ")})\n${journals.join("\n")}`,
          );
        }
        // and none moved and back: the survivor's HAProxy check, slow while the new VM boots beside it, never became a
        // FAULT (a full run saw "VRRP_Script(haproxy) timed_out; Entering FAULT STATE" with the old check times)
        // (all of its lines since the replacement, not the figure's last 12; an unread journal is no proof)
        expect(survivorEvents).not.toMatch(/Entering FAULT|^journal unread/);
        // conntrackd resynced: the held flow, opened before the new LB existed, is in its external cache
        const cache = await waitUntil(
          "the held flow in the new LB's conntrackd external cache",
          2 * MINUTE,
          2000,
          async () => {
            const out = await sshMust(key, lbPublic(dead), "sudo conntrackd -e");
            return out.includes(`dport=${hold!.port}`) ? out : undefined;
          },
        );
        figures.replaceExternalCacheEntries = cache.split("\n").filter((l) => l.trim() !== "").length;
        // and the load ran on through the new LB's start
        await sleep(5000);
      } finally {
        stop = true;
        await Promise.all([load, arpWatch]);
      }
      figures.replaceRequests = requests;
      figures.replaceFailed = failed;
      figures.replaceArpProbes = arpProbes;
      figures.replaceDuplicateVipAnswers = duplicates;
      step(
        `replacement: ${requests} requests, ${failed} failed; ARP: ${arpProbes} probes, ${duplicates} with two answers (MACs seen: ${[...arpMacs].map(([v, m]) => `${v} ${[...m].join("/")}`).join("; ")})`,
      );
      expect(duplicates).toBe(0);
      expect(failed).toBe(0);
      const flow = hold.connections[0]!;
      const bytes = flow.bytes;
      await sleep(2500);
      expect([flow.closed, hold.connections.length, flow.bytes > bytes]).toEqual([false, 1, true]);
    },
  );

  stage(
    "secrets rotated without replacing a VM: each LB in turn gets the new metrics password and registry credentials and a new token; new values live, old gone, only the agent restarts, and only for the token",
    async () => {
      const rotated = {
        metricsPassword: "e2e-metrics-password-rotated-4711",
        registryAuth: '{"auths":{"registry.example":{"auth":"ZTJlOnJvdGF0ZWQ="}}}',
      };
      const sha = (v: string) => createHash("sha256").update(v).digest("hex");
      const agentSince = async (i: number) =>
        sshMust(key, lbPublic(i), "systemctl show -p ActiveEnterTimestampMonotonic --value edgepair-agent.service");
      for (let i = 0; i < 2; i++) {
        const before = await agentSince(i);
        const r = await sshRun(key, lbPublic(i), deliveryCommand(deliveredAgent()), {
          input: secretsStdin({ clusterToken: cluster.token, ...rotated }),
          timeoutMs: 60_000,
        });
        expect(r).toMatchObject({ code: 0 });
        expect(r.stdout).toContain("delivered: metricsPassword");
        expect(r.stdout).not.toContain("restarted:");
        for (const v of [rotated.metricsPassword, rotated.registryAuth, cluster.token])
          expect(`${r.stdout}${r.stderr}`).not.toContain(v);
        const sums = await sshMust(
          key,
          lbPublic(i),
          "sudo sha256sum /etc/edgepair/secrets/metrics-password /etc/ostree/auth.json; sudo stat -c '%a %n' /etc/edgepair/secrets/metrics-password /etc/ostree/auth.json",
        );
        expect(sums).toContain(`${sha(rotated.metricsPassword)}  /etc/edgepair/secrets/metrics-password`);
        expect(sums).toContain(`${sha(rotated.registryAuth)}  /etc/ostree/auth.json`);
        expect(sums).toContain("600 /etc/edgepair/secrets/metrics-password\n600 /etc/ostree/auth.json");
        // the agent takes the new metrics password without a restart; the old one is refused
        const metricsUrl = `http://${lbPrivate(i)}:${spec.metrics.port}/metrics`;
        await waitUntil(`LB ${i + 1}'s metrics with the rotated password`, 30_000, 1000, async () =>
          (await probe(metricsUrl, { timeoutMs: 5000, auth: metricsAuth(rotated.metricsPassword) })).status === 200
            ? true
            : undefined,
        );
        expect((await probe(metricsUrl, { timeoutMs: 5000, auth: metricsAuth(METRICS) })).status).toBe(401);
        // the old value is in no file the LB reads (compared by hash: a secret never goes on a command line, which sudo
        // would log; cloud-init keeps its own root-only copy of the first boot's user-data)
        const everySum = await sshMust(
          key,
          lbPublic(i),
          "sudo find /etc/edgepair /etc/ostree /var/lib/edgepair -type f -exec sha256sum {} +",
        );
        expect(everySum).not.toContain(sha(METRICS));
        expect(await agentSince(i)).toBe(before);
      }
      // a new token: the agent restarts and keeps reporting with it
      const sa = agentNames({ name: spec.clusterName }).serviceAccount;
      const tr = await cluster.must("POST", `/api/v1/namespaces/${cluster.namespace}/serviceaccounts/${sa}/token`, {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: 3600 },
      });
      const token = (tr.body as { status: { token: string } }).status.token;
      const redundantSince = Date.now();
      for (let i = 0; i < 2; i++) {
        const r = await sshRun(key, lbPublic(i), deliveryCommand(deliveredAgent()), {
          input: secretsStdin({ clusterToken: token, ...rotated }),
          timeoutMs: 60_000,
        });
        expect(r).toMatchObject({ code: 0 });
        expect(r.stdout).toContain("restarted: edgepair-agent.service");
        // the delivered token in the kept copy; the old one in no file (the token file itself may hold a renewed one)
        const sums = await sshMust(key, lbPublic(i), "sudo find /etc/edgepair -type f -exec sha256sum {} +");
        expect(sums).toContain(`${sha(`${token}\n`)}  /etc/edgepair/secrets/cluster-token.bootstrap`);
        expect(sums).not.toContain(sha(cluster.token));
        expect(sums).not.toContain(sha(`${cluster.token}\n`));
      }
      await waitUntil("both entries heartbeating after the token rotation", 3 * MINUTE, 1000, async () => {
        const lb = (await cluster.must("GET", cluster.lbPath)).body as {
          status?: { loadBalancers?: { name: string; heartbeat: string }[] };
        };
        const fresh = (lb.status?.loadBalancers ?? []).filter((e) => Date.parse(e.heartbeat) > redundantSince + 1000);
        return fresh.length === 2 ? true : undefined;
      });
      for (let i = 0; i < 2; i++) {
        const journal = await sshRun(key, lbPublic(i), "sudo journalctl -b --no-pager -o cat", { timeoutMs: 60_000 });
        for (const v of [rotated.metricsPassword, rotated.registryAuth, token, cluster.token])
          expect(journal.stdout).not.toContain(v);
      }
    },
  );

  stage("pulumi destroy leaves nothing", async () => {
    node?.remove();
    node = undefined;
    const t = Date.now();
    await ws.destroy();
    figures.destroySeconds = seconds(Date.now() - t);
    lv.virsh(["vol-delete", "--pool", lv.pool, "standin.qcow2"]);
    lv.virsh(["pool-refresh", lv.pool]);
    const inv = lv.inventory();
    expect(inv.domains).toEqual([]);
    expect(inv.networks).toEqual([]);
    expect(inv.volumes).toEqual([]);
    // ClusterAccess's objects too: the LoadBalancer, its CRD and the agent's namespace
    for (const path of [
      cluster.lbPath,
      `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`,
      `/api/v1/namespaces/${cluster.namespace}`,
    ])
      expect([path, (await adminCall(cluster.admin, "GET", path)).status]).toEqual([path, 404]);
  });
});

/** IPv4 addresses on LB i's NICs (not on the edgepair-fip link, which carries every frontend VIP on both LBs). */
async function nicAddresses(i: number): Promise<string[]> {
  const h = lbHosts[i]!;
  return parseIpv4Addresses(
    await sshMust(
      key,
      lbPublic(i),
      `ip -o -4 addr show dev ${h.publicInterface.name}; ip -o -4 addr show dev ${h.privateInterface.name}`,
    ),
  );
}

/** The host's address on the cluster network: the private libvirt network's host side, on its bridge. */
function hostPrivateAddress(): string {
  const xml = lv.virsh(["net-dumpxml", `${spec.clusterName}-net-private`]).stdout;
  const address = xml.match(/<ip address=['"]([\d.]+)['"]/)?.[1];
  if (!address) throw new Error(`no host address in the private network's XML:\n${xml}`);
  return address;
}

function printFigures(): void {
  if (Object.keys(figures).length === 0) return;
  const width = Math.max(...Object.keys(figures).map((k) => k.length));
  process.stderr.write(
    `\nend-to-end figures\n${Object.entries(figures)
      .map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)
      .join("\n")}\n`,
  );
  // bench/results is not in git: a clean clone has no such directory
  const results = join(__dirname, "..", "bench", "results");
  mkdirSync(results, { recursive: true });
  writeFileSync(
    join(results, "e2e-vms.json"),
    `${JSON.stringify({ at: new Date().toISOString(), figures }, null, 2)}\n`,
  );
}
