/**
 * The libvirt provider's functions (check, diff, create, read, update, delete) against a real libvirtd started by
 * test/fixtures/libvirtd.ts: each resource created, read, updated in place, replaced (the way the engine does it:
 * the old one deleted first when diff says deleteBeforeReplace) and deleted, checked with virsh and with what the
 * host shows (bridges, routes, dnsmasq, iptables, QEMU, a real DHCP client); drift made with virsh is what read
 * reports and update repairs; clear errors for a name collision, a missing base image, an unreachable URI, a bad MAC.
 * Domains boot an empty qcow2: SeaBIOS finds nothing to boot, which is fine, `running` is what matters.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import {
  checkCloudInitDisk,
  checkDomain,
  checkNetwork,
  checkVolume,
  cloudInitDiskProvider,
  diffCloudInitDisk,
  diffDomain,
  diffNetwork,
  diffVolume,
  domainProvider,
  networkProvider,
  powerOff,
  volumeProvider,
} from "../providers/libvirt";
import type {
  CloudInitDiskOutputs,
  DomainInputs,
  DomainOutputs,
  NetworkInputs,
  NetworkOutputs,
  VolumeOutputs,
} from "../providers/libvirt";
import type { CheckFailure } from "../providers/libvirt";
import { must, run } from "./checkers/run";
import { firewallSnapshot, Libvirtd, libvirtRules, makeBaseImage, startLibvirtd } from "./fixtures/libvirtd";
import { stepTimings } from "./fixtures/step-timings";

jest.setTimeout(120_000);

let lv: Libvirtd;
let base = "";

const { timed, report: reportTimings } = stepTimings("libvirt provider", 2);

type Checked<T> = { inputs: T; failures: CheckFailure[] };
function ok<T>(r: Checked<T>): T {
  if (r.failures.length > 0) throw new Error(r.failures.map((f) => `${f.property}: ${f.reason}`).join("\n"));
  return r.inputs;
}

const net = (args: Record<string, unknown>) => ok(checkNetwork({ uri: lv.uri, ...args }));
const vol = (args: Record<string, unknown>) => ok(checkVolume({ uri: lv.uri, pool: lv.pool, ...args }));
const seed = (args: Record<string, unknown>) => ok(checkCloudInitDisk({ uri: lv.uri, pool: lv.pool, ...args }));
const dom = (args: Record<string, unknown>) => ok(checkDomain({ uri: lv.uri, shutdownTimeoutSeconds: 0, ...args }));

interface Made<O> {
  id: string;
  outs: O;
}

type Provider<I, O> = pulumi.dynamic.ResourceProvider<I, O>;

async function create<I, O>(provider: Provider<I, O>, inputs: NoInfer<I>): Promise<Made<O>> {
  const r = await provider.create(inputs);
  return { id: r.id, outs: r.outs as O };
}

async function read<I, O>(provider: Provider<I, O>, made: NoInfer<Made<O>>): Promise<O | undefined> {
  const r = await provider.read!(made.id, made.outs);
  return r.id === undefined ? undefined : (r.props as O);
}

async function update<I, O>(provider: Provider<I, O>, made: NoInfer<Made<O>>, news: NoInfer<I>): Promise<Made<O>> {
  const r = await provider.update!(made.id, made.outs, news);
  return { id: made.id, outs: r.outs as O };
}

/** Replaces as the engine would: old first when deleteBeforeReplace, else new first. */
async function replace<I, O>(
  provider: Provider<I, O>,
  made: NoInfer<Made<O>>,
  news: NoInfer<I>,
  deleteBeforeReplace: boolean,
): Promise<Made<O>> {
  if (deleteBeforeReplace) {
    await provider.delete!(made.id, made.outs);
    return create(provider, news);
  }
  const fresh = await create(provider, news);
  await provider.delete!(made.id, made.outs);
  return fresh;
}

const linkExists = (name: string) => fs.existsSync(`/sys/class/net/${name}`);
const dnsmasqFile = (network: string, ext: string) => path.join(lv.dir, "lib", "dnsmasq", `${network}.${ext}`);

beforeAll(async () => {
  lv = await timed("start libvirtd + virtlogd + pool", () => startLibvirtd());
  base = makeBaseImage(lv);
}, 120_000);

afterAll(async () => {
  try {
    if (lv) {
      const report = await timed("stop libvirtd", () => lv.stop());
      if (report.leftovers.length > 0) throw new Error(`left in libvirtd: ${report.leftovers.join(", ")}`);
    }
  } finally {
    reportTimings();
  }
}, 120_000);

describe("Network", () => {
  let made: Made<NetworkOutputs>;
  let inputs: NetworkInputs;
  const name = "epp-pub";
  const bridge = "epp-pub";

  test("create: NAT, host side on the last address, reservations, router option, a route via the VIP", async () => {
    inputs = net({
      name,
      mode: "nat",
      cidr: "10.93.1.0/24",
      bridge,
      dhcp: {
        start: "10.93.1.100",
        end: "10.93.1.150",
        router: "10.93.1.1",
        hosts: [{ mac: "52:54:00:93:01:02", ip: "10.93.1.2", hostname: "lb1" }],
      },
      routes: [{ cidr: "198.18.93.0/24", gateway: "10.93.1.10" }],
    });
    made = await timed("network create", () => create(networkProvider, inputs));
    expect(made.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(made.outs).toEqual({ ...inputs, uri: lv.uri, uuid: made.id, bridge, active: true });
    expect(await read(networkProvider, made)).toEqual(made.outs);
    expect(diffNetwork(made.outs, inputs).changes).toBe(false);

    expect(lv.virsh(["net-info", name]).stdout).toMatch(/Active:\s+yes[\s\S]*Autostart:\s+yes/);
    expect(must("ip", ["-4", "-o", "addr", "show", "dev", bridge]).stdout).toContain("inet 10.93.1.254/24");
    expect(must("ip", ["route", "show", "198.18.93.0/24"]).stdout).toMatch(/via 10\.93\.1\.10 dev epp-pub/);
    expect(fs.readFileSync(dnsmasqFile(name, "conf"), "utf8")).toContain("dhcp-option=option:router,10.93.1.1");
    expect(fs.readFileSync(dnsmasqFile(name, "hostsfile"), "utf8")).toContain("52:54:00:93:01:02,10.93.1.2,lb1");
    expect(libvirtRules(firewallSnapshot(), ["10.93.1.0/24"]).join("\n")).toMatch(
      /-s 10\.93\.1\.0\/24 ! -d 10\.93\.1\.0\/24 -j MASQUERADE/,
    );
  });

  test("update in place: reservations added/changed/removed, range moved, autostart off; same UUID, dnsmasq sees it live", async () => {
    const news = net({
      ...inputs,
      autostart: false,
      dhcp: {
        start: "10.93.1.160",
        end: "10.93.1.170",
        router: "10.93.1.1",
        hosts: [
          { mac: "52:54:00:93:01:03", ip: "10.93.1.3", hostname: "lb2" },
          { mac: "52:54:00:93:01:09", ip: "10.93.1.9" },
        ],
      },
    });
    const d = diffNetwork(made.outs, news);
    expect(d).toEqual({
      changes: true,
      replaces: [],
      updates: ["dhcp.start", "dhcp.end", "dhcp.hosts", "autostart"],
      deleteBeforeReplace: false,
    });
    made = await timed("network update", () => update(networkProvider, made, news));
    expect(made.outs.uuid).toBe(made.id);
    expect(made.outs).toMatchObject({ autostart: false, active: true, dhcp: news.dhcp });
    expect(await read(networkProvider, made)).toEqual(made.outs);
    const hosts = fs.readFileSync(dnsmasqFile(name, "hostsfile"), "utf8");
    expect(hosts).toContain("52:54:00:93:01:03,10.93.1.3,lb2");
    expect(hosts).toContain("52:54:00:93:01:09,10.93.1.9");
    expect(hosts).not.toContain("52:54:00:93:01:02");
    expect(fs.readFileSync(dnsmasqFile(name, "conf"), "utf8")).toContain("dhcp-range=10.93.1.160,10.93.1.170");
    inputs = news;
  });

  test("routes in place (a floating IP added on day 2): same UUID, the host's routes follow at once, the definition too", async () => {
    const news = net({
      ...inputs,
      routes: [
        { cidr: "198.18.93.0/24", gateway: "10.93.1.10" },
        { cidr: "198.18.94.7/32", gateway: "10.93.1.10" },
      ],
    });
    expect(diffNetwork(made.outs, news)).toEqual({
      changes: true,
      replaces: [],
      updates: ["routes"],
      deleteBeforeReplace: false,
    });
    made = await timed("network routes update", () => update(networkProvider, made, news));
    expect(made.outs.uuid).toBe(made.id);
    expect(must("ip", ["route", "show", "198.18.94.7/32"]).stdout).toMatch(/via 10\.93\.1\.10 dev epp-pub/);
    expect(lv.virsh(["net-dumpxml", "--inactive", name]).stdout).toContain("198.18.94.7");
    expect(await read(networkProvider, made)).toEqual(made.outs);
    // and back: the route leaves the host and the definition
    const back = net({ ...inputs });
    made = await update(networkProvider, made, back);
    expect(must("ip", ["route", "show", "198.18.94.7/32"]).stdout.trim()).toBe("");
    expect(must("ip", ["route", "show", "198.18.93.0/24"]).stdout).toMatch(/via 10\.93\.1\.10 dev epp-pub/);
    expect(lv.virsh(["net-dumpxml", "--inactive", name]).stdout).not.toContain("198.18.94.7");
    inputs = back;
  });

  test("replace: another CIDR (same name and bridge, so the old one is deleted first); the old route is gone", async () => {
    const news = net({
      ...inputs,
      hostAddress: undefined,
      cidr: "10.93.2.0/24",
      dhcp: { router: "10.93.2.1", hosts: [] },
      routes: [{ cidr: "198.18.93.0/24", gateway: "10.93.2.10" }],
    });
    const d = diffNetwork(made.outs, news);
    expect(d).toMatchObject({ replaces: ["cidr", "hostAddress", "dhcp.router"], deleteBeforeReplace: true });
    expect(d.updates).toContain("routes");
    // Creating the new one beside the old one fails on the name: deleteBeforeReplace is needed, not a preference.
    await expect(networkProvider.create(news)).rejects.toThrow(/^name: a network named "epp-pub" already exists/);
    const old = made.id;
    made = await timed("network replace", () => replace(networkProvider, made, news, d.deleteBeforeReplace));
    expect(made.id).not.toBe(old);
    expect(must("ip", ["route", "show", "198.18.93.0/24"]).stdout).toMatch(/via 10\.93\.2\.10 dev epp-pub/);
    expect(must("ip", ["-4", "-o", "addr", "show", "dev", bridge]).stdout).toContain("inet 10.93.2.254/24");
    inputs = news;
  });

  test("delete: network, bridge, route, dnsmasq and libvirt's rules for it are gone", async () => {
    await timed("network delete", () => networkProvider.delete!(made.id, made.outs));
    expect(lv.inventory().networks).toEqual([]);
    expect(linkExists(bridge)).toBe(false);
    expect(must("ip", ["route", "show", "198.18.93.0/24"]).stdout).toBe("");
    expect(run("pgrep", ["-f", `dnsmasq/${name}.conf`]).stdout).toBe("");
    expect(libvirtRules(firewallSnapshot(), [bridge, "10.93."])).toEqual([]);
    expect(await read(networkProvider, made)).toBeUndefined();
    await networkProvider.delete!(made.id, made.outs); // deleting what is gone is fine
  });

  test("an isolated network gives a reserved MAC its address and the gateway VIP as router (real DHCP client)", async () => {
    const iso = await create(
      networkProvider,
      net({
        name: "epp-iso",
        mode: "isolated",
        cidr: "10.93.3.0/24",
        bridge: "epp-iso",
        dhcp: { router: "10.93.3.1", hosts: [{ mac: "52:54:00:93:03:0a", ip: "10.93.3.10", hostname: "node1" }] },
      }),
    );
    const ns = `epp-dh-${process.pid}`;
    const [inner, outer] = [`eppd${process.pid % 1000}a`, `eppd${process.pid % 1000}b`];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edgepair-dhcp-"));
    const script = path.join(dir, "script.sh");
    fs.writeFileSync(script, `#!/bin/sh\necho "$reason ip=$new_ip_address routers=$new_routers" >> ${dir}/events\n`, {
      mode: 0o755,
    });
    try {
      must("ip", ["netns", "add", ns]);
      must("ip", ["link", "add", inner, "type", "veth", "peer", "name", outer]);
      must("ip", ["link", "set", outer, "master", "epp-iso", "up"]);
      must("ip", ["link", "set", inner, "netns", ns]);
      must("ip", ["-n", ns, "link", "set", inner, "address", "52:54:00:93:03:0a", "up"]);
      const r = run(
        "ip",
        [
          "netns",
          "exec",
          ns,
          "dhclient",
          "-1",
          "-sf",
          script,
          "-lf",
          path.join(dir, "lease"),
          "-pf",
          path.join(dir, "pid"),
          inner,
        ],
        { timeoutMs: 40_000 },
      );
      const events = fs.existsSync(path.join(dir, "events")) ? fs.readFileSync(path.join(dir, "events"), "utf8") : "";
      expect({ status: r.status, bound: events.split("\n").find((l) => l.startsWith("BOUND")) }).toEqual({
        status: 0,
        bound: "BOUND ip=10.93.3.10 routers=10.93.3.1",
      });
    } finally {
      const pid = Number(fs.existsSync(path.join(dir, "pid")) ? fs.readFileSync(path.join(dir, "pid"), "utf8") : "0");
      if (pid > 0) run("kill", [String(pid)]);
      run("ip", ["netns", "del", ns]);
      run("ip", ["link", "del", outer]);
      fs.rmSync(dir, { recursive: true, force: true });
      await networkProvider.delete!(iso.id, iso.outs);
    }
  });
});

describe("Volume", () => {
  let overlay: Made<VolumeOutputs>;

  test("create: an overlay on the base image, and an empty sized volume", async () => {
    const inputs = vol({ name: "epp-overlay.qcow2", base });
    overlay = await timed("volume create", () => create(volumeProvider, inputs));
    const basePath = path.join(lv.poolDir, base);
    expect(overlay.outs).toMatchObject({
      kind: "libvirt:Volume",
      key: path.join(lv.poolDir, "epp-overlay.qcow2"),
      capacity: 64 * 2 ** 20,
      backingPath: basePath,
      format: "qcow2",
    });
    expect(overlay.id).toBe(overlay.outs.key);
    expect(await read(volumeProvider, overlay)).toEqual(overlay.outs);
    const info = JSON.parse(must("qemu-img", ["info", "--output=json", "-U", overlay.outs.path]).stdout) as Record<
      string,
      unknown
    >;
    expect(info).toMatchObject({ format: "qcow2", "virtual-size": 64 * 2 ** 20, "backing-filename": basePath });

    const empty = await create(volumeProvider, vol({ name: "epp-empty.raw", format: "raw", size: 8 * 2 ** 20 }));
    expect(empty.outs).toMatchObject({ capacity: 8 * 2 ** 20, format: "raw" });
    expect(empty.outs.backingPath).toBeUndefined();
    await volumeProvider.delete!(empty.id, empty.outs);
  });

  test("update in place: a larger size grows the image, same key", async () => {
    const news = vol({ name: "epp-overlay.qcow2", base, size: 96 * 2 ** 20 });
    expect(diffVolume(overlay.outs, news)).toMatchObject({ replaces: [], updates: ["size"] });
    overlay = await timed("volume update", () => update(volumeProvider, overlay, news));
    expect(overlay.outs.capacity).toBe(96 * 2 ** 20);
    expect(
      JSON.parse(must("qemu-img", ["info", "--output=json", "-U", overlay.outs.path]).stdout)["virtual-size"],
    ).toBe(96 * 2 ** 20);
  });

  test("replace: a smaller size (same name: old one first)", async () => {
    const news = vol({ name: "epp-overlay.qcow2", base, size: 64 * 2 ** 20 });
    const d = diffVolume(overlay.outs, news);
    expect(d).toMatchObject({ replaces: ["size"], deleteBeforeReplace: true });
    overlay = await timed("volume replace", () => replace(volumeProvider, overlay, news, d.deleteBeforeReplace));
    expect(overlay.outs.capacity).toBe(64 * 2 ** 20);
  });

  test("delete: the file is gone; errors for a missing base image and a name collision", async () => {
    await expect(volumeProvider.create(vol({ name: "epp-overlay.qcow2", base }))).rejects.toThrow(
      /^name: a volume named "epp-overlay.qcow2" already exists in pool "edgepair-test-[0-9a-f]+" on qemu:\/\/\/system\?socket=/,
    );
    await volumeProvider.delete!(overlay.id, overlay.outs);
    expect(fs.existsSync(overlay.outs.path)).toBe(false);
    await expect(volumeProvider.create(vol({ name: "epp-x.qcow2", base: "nope.qcow2" }))).rejects.toThrow(
      /^base: base image volume "nope.qcow2" not found in pool "edgepair-test-[0-9a-f]+" on qemu:\/\/\/system\?socket=/,
    );
    await expect(volumeProvider.create(vol({ name: "epp-x.qcow2", base, pool: "no-such-pool" }))).rejects.toThrow(
      /^pool: storage pool "no-such-pool" not found/,
    );
    expect(lv.inventory().volumes).toEqual([base]);
  });
});

describe("CloudInitDisk", () => {
  let made: Made<CloudInitDiskOutputs>;
  const download = (key: string) => {
    const file = path.join(lv.dir, `download-${Date.now()}.iso`);
    lv.virsh(["vol-download", key, file]);
    const bytes = fs.readFileSync(file);
    const userData = must("isoinfo", ["-R", "-i", file, "-x", "/user-data"]).stdout;
    const volumeId = /^Volume id: (.*)$/m.exec(must("isoinfo", ["-d", "-i", file]).stdout)?.[1];
    fs.rmSync(file);
    return { sha: createHash("sha256").update(bytes).digest("hex"), userData, volumeId };
  };

  test("create: a NoCloud ISO (volume id cidata) uploaded as a volume; outputs hold hashes, not the documents", async () => {
    const userData = "#cloud-config\nhostname: lb1\nchpasswd: {expire: false}\npassword: not-in-outputs\n";
    made = await timed("cloud-init disk create", () =>
      create(cloudInitDiskProvider, seed({ name: "epp-seed.iso", userData })),
    );
    const got = download(made.id);
    expect(got).toEqual({ sha: made.outs.isoSha256, userData, volumeId: "cidata" });
    expect(JSON.stringify(made.outs)).not.toContain("not-in-outputs");
    expect(await read(cloudInitDiskProvider, made)).toEqual(made.outs);
  });

  test("update in place: new user-data, same volume key, new image", async () => {
    const news = seed({ name: "epp-seed.iso", userData: "#cloud-config\nhostname: lb1-renamed\n" });
    expect(diffCloudInitDisk(made.outs, news)).toMatchObject({
      replaces: [],
      updates: ["userData/metaData/networkConfig"],
    });
    const before = made.outs.isoSha256;
    made = await timed("cloud-init disk update", () => update(cloudInitDiskProvider, made, news));
    expect(made.outs.key).toBe(made.id);
    expect(made.outs.isoSha256).not.toBe(before);
    expect(download(made.id)).toEqual({ sha: made.outs.isoSha256, userData: news.userData, volumeId: "cidata" });
  });

  test("delete", async () => {
    await cloudInitDiskProvider.delete!(made.id, made.outs);
    expect(fs.existsSync(made.outs.path)).toBe(false);
    expect(await read(cloudInitDiskProvider, made)).toBeUndefined();
  });
});

describe("Domain", () => {
  const nets: Array<Made<NetworkOutputs>> = [];
  const vols: Array<Made<VolumeOutputs>> = [];
  const seeds: Array<Made<CloudInitDiskOutputs>> = [];
  let made: Made<DomainOutputs>;
  let inputs: DomainInputs;
  const expectedType = () => (lv.kvm ? "kvm" : "qemu");

  beforeAll(async () => {
    nets.push(
      await create(networkProvider, net({ name: "epp-dpub", mode: "nat", cidr: "10.93.10.0/24", bridge: "epp-dpub" })),
    );
    nets.push(
      await create(
        networkProvider,
        net({ name: "epp-dpriv", mode: "isolated", cidr: "10.93.11.0/24", bridge: "epp-dpriv" }),
      ),
    );
    vols.push(await create(volumeProvider, vol({ name: "epp-vm.qcow2", base })));
    for (const n of [1, 2])
      seeds.push(
        await create(
          cloudInitDiskProvider,
          seed({ name: `epp-vm-seed${n}.iso`, userData: `#cloud-config\nhostname: vm-${n}\n` }),
        ),
      );
  });

  afterAll(async () => {
    for (const m of seeds) await cloudInitDiskProvider.delete!(m.id, m.outs);
    for (const m of vols) await volumeProvider.delete!(m.id, m.outs);
    for (const m of nets) await networkProvider.delete!(m.id, m.outs);
  });

  const domiflist = () =>
    lv
      .virsh(["domiflist", "epp-vm"])
      .stdout.split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => l.trim().split(/\s+/).slice(1)); // type, source, model, mac

  test("create: running, kvm or TCG as the host allows, two NICs with their MACs, disk + seed, serial console, autostart", async () => {
    inputs = dom({
      name: "epp-vm",
      vcpu: 1,
      memoryMiB: 128,
      disks: [{ pool: lv.pool, volume: "epp-vm.qcow2" }],
      cloudInit: { pool: lv.pool, volume: "epp-vm-seed1.iso" },
      nics: [
        { network: "epp-dpub", mac: "52:54:00:93:10:01" },
        { network: "epp-dpriv", mac: "52:54:00:93:11:01" },
      ],
    });
    made = await timed("domain create (define + start)", () => create(domainProvider, inputs));
    expect(made.outs).toEqual({
      ...inputs,
      uri: lv.uri,
      uuid: made.id,
      virtType: expectedType(),
      state: "running",
      running: true,
      restartRequired: false,
    });
    expect(await read(domainProvider, made)).toEqual(made.outs);
    expect(domiflist()).toEqual([
      ["network", "epp-dpub", "virtio", "52:54:00:93:10:01"],
      ["network", "epp-dpriv", "virtio", "52:54:00:93:11:01"],
    ]);
    expect(lv.virsh(["domblklist", "epp-vm"]).stdout).toMatch(
      /vda\s+\S*epp-vm\.qcow2[\s\S]*sda\s+\S*epp-vm-seed1\.iso/,
    );
    expect(lv.virsh(["ttyconsole", "epp-vm"]).stdout.trim()).toMatch(/^\/dev\/pts\/\d+$/);
    expect(lv.virsh(["dominfo", "epp-vm"]).stdout).toMatch(/Autostart:\s+enable/);
    const pid = Number(fs.readFileSync(path.join(lv.dir, "run", "qemu", "epp-vm.pid"), "utf8"));
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ")).toMatch(
      lv.kvm ? /-accel kvm/ : /-accel tcg/,
    );
  });

  test("update in place: memory/vcpu (restart required), seed swapped live, autostart off, stop and start; same UUID", async () => {
    let news = dom({
      ...inputs,
      vcpu: 2,
      memoryMiB: 192,
      cloudInit: { pool: lv.pool, volume: "epp-vm-seed2.iso" },
      autostart: false,
    });
    expect(diffDomain(made.outs, news)).toMatchObject({
      replaces: [],
      updates: ["cloudInit", "vcpu", "memoryMiB", "autostart"],
    });
    made = await timed("domain update (memory, vcpu, seed, autostart)", () => update(domainProvider, made, news));
    expect(made.outs).toMatchObject({
      uuid: made.id,
      vcpu: 2,
      memoryMiB: 192,
      autostart: false,
      state: "running",
      restartRequired: true,
    });
    expect(lv.virsh(["domblklist", "epp-vm"]).stdout).toMatch(/sda\s+\S*epp-vm-seed2\.iso/); // live
    expect(lv.virsh(["dumpxml", "--inactive", "epp-vm"]).stdout).toContain("<memory unit='KiB'>196608</memory>");

    news = dom({ ...news, running: false });
    made = await timed("domain update (stop)", () => update(domainProvider, made, news));
    expect(made.outs).toMatchObject({ state: "shut off", running: false, restartRequired: false });
    news = dom({ ...news, running: true });
    made = await timed("domain update (start)", () => update(domainProvider, made, news));
    expect(made.outs).toMatchObject({
      uuid: made.id,
      state: "running",
      running: true,
      restartRequired: false,
      vcpu: 2,
      memoryMiB: 192,
    });
    expect(await read(domainProvider, made)).toEqual(made.outs);
    inputs = news;
  });

  test("replace: a new MAC (same name, so the old domain goes first)", async () => {
    const news = dom({ ...inputs, nics: [inputs.nics[0], { ...inputs.nics[1], mac: "52:54:00:93:11:02" }] });
    const d = diffDomain(made.outs, news);
    expect(d).toMatchObject({ replaces: ["nics"], deleteBeforeReplace: true });
    await expect(domainProvider.create(news)).rejects.toThrow(
      /^name: a domain named "epp-vm" already exists on qemu:\/\/\/system\?socket=/,
    );
    const old = made.id;
    made = await timed("domain replace", () => replace(domainProvider, made, news, d.deleteBeforeReplace));
    expect(made.id).not.toBe(old);
    expect(domiflist()[1]).toEqual(["network", "epp-dpriv", "virtio", "52:54:00:93:11:02"]);
    inputs = news;
  });

  test("drift made with virsh is what read reports, and update repairs it", async () => {
    lv.virsh(["destroy", "epp-vm"]);
    lv.virsh(["setmaxmem", "epp-vm", "256M", "--config"]);
    lv.virsh(["autostart", "epp-vm"]);
    const drifted = (await read(domainProvider, made))!;
    expect(drifted).toMatchObject({ state: "shut off", running: false, memoryMiB: 256, autostart: true });
    expect(diffDomain(drifted, inputs)).toMatchObject({ replaces: [], updates: ["memoryMiB", "autostart", "running"] });
    made = await update(domainProvider, { id: made.id, outs: drifted }, inputs);
    expect(made.outs).toMatchObject({ state: "running", memoryMiB: 192, autostart: false });

    const n = nets[1]!;
    lv.virsh(["net-autostart", "--disable", "epp-dpriv"]);
    const nd = (await read(networkProvider, n))!;
    expect(nd.autostart).toBe(false);
    expect(
      diffNetwork(nd, net({ name: "epp-dpriv", mode: "isolated", cidr: "10.93.11.0/24", bridge: "epp-dpriv" })),
    ).toMatchObject({ updates: ["autostart"] });

    const s = seeds[0]!;
    const junk = path.join(lv.dir, "junk.bin");
    fs.writeFileSync(junk, Buffer.alloc(4096, 7));
    lv.virsh(["vol-upload", s.id, junk]);
    const sd = (await read(cloudInitDiskProvider, s))!;
    expect(sd.isoSha256).not.toBe(s.outs.isoSha256);
    const sIn = seed({ name: "epp-vm-seed1.iso", userData: "#cloud-config\nhostname: vm-1\n" });
    expect(diffCloudInitDisk(sd, sIn)).toMatchObject({ updates: ["userData/metaData/networkConfig"] });
    seeds[0] = await update(cloudInitDiskProvider, { id: s.id, outs: sd }, sIn);
    expect(seeds[0].outs.contentSha256).toBe(s.outs.contentSha256);

    const v = vols[0]!;
    lv.virsh(["blockresize", "epp-vm", "vda", "80M"]); // the running VM holds the image: grow it through QEMU
    expect((await read(volumeProvider, v))!.capacity).toBe(80 * 2 ** 20);
  });

  test("errors: bad MAC (check), missing network, missing disk volume", async () => {
    const bad = checkDomain({ ...inputs, nics: [{ network: "epp-dpub", mac: "52:54:00:93:10" }] });
    expect(bad.failures).toEqual([
      {
        property: "nics[0].mac",
        reason: 'must be a unicast MAC address such as 52:54:00:12:34:56, not "52:54:00:93:10"',
      },
    ]);
    await expect(
      domainProvider.create(
        dom({ ...inputs, name: "epp-vm2", nics: [{ network: "epp-none", mac: "52:54:00:93:12:01" }] }),
      ),
    ).rejects.toThrow(/^nics\[0\]\.network: network "epp-none" not found on qemu:\/\/\/system\?socket=/);
    await expect(
      domainProvider.create(
        dom({
          ...inputs,
          name: "epp-vm2",
          disks: [{ pool: lv.pool, volume: "missing.qcow2" }],
          nics: [{ network: "epp-dpub", mac: "52:54:00:93:12:01" }],
        }),
      ),
    ).rejects.toThrow(/^disks\[0\]: volume "missing.qcow2" not found in pool/);
    expect(lv.inventory().domains).toEqual(["epp-vm"]);
  });

  test("delete: the domain and its QEMU process are gone; deleting again is fine", async () => {
    const pid = Number(fs.readFileSync(path.join(lv.dir, "run", "qemu", "epp-vm.pid"), "utf8"));
    await timed("domain delete", () => domainProvider.delete!(made.id, made.outs));
    expect(lv.inventory().domains).toEqual([]);
    expect(
      fs.existsSync(`/proc/${pid}/cmdline`) && fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("qemu"),
    ).toBe(false);
    expect(await read(domainProvider, made)).toBeUndefined();
    await domainProvider.delete!(made.id, made.outs);
  });

  test("power-off of a guest that is off already is done, not an error (it powered off between our look and destroy)", async () => {
    const off = await create(domainProvider, dom({ ...inputs, running: false }));
    try {
      // what virsh itself says, so the case is real: libvirt refuses to destroy a domain that is not running
      expect(lv.tryVirsh(["destroy", "epp-vm"]).stderr).toMatch(/domain is not running/);
      await expect(powerOff(lv.uri, off.id)).resolves.toBeUndefined();
      await expect(powerOff(lv.uri, "epp-no-such-vm")).resolves.toBeUndefined();
      // counter-case: any other failure still fails
      await expect(powerOff("qemu:///system?socket=/nonexistent/libvirt-sock", off.id)).rejects.toThrow(
        /cannot connect/,
      );
    } finally {
      await domainProvider.delete!(off.id, off.outs);
    }
  });

  test("a domain undefined behind our back reads as gone (refresh drops it)", async () => {
    const again = await create(domainProvider, dom({ ...inputs, running: false }));
    lv.virsh(["undefine", "epp-vm"]);
    expect(await read(domainProvider, again)).toBeUndefined();
  });
});

describe("connection errors", () => {
  test("an unreachable URI fails fast and says which URI", async () => {
    const t0 = Date.now();
    await expect(
      networkProvider.create(
        ok(
          checkNetwork({
            uri: "qemu:///system?socket=/nonexistent/libvirt-sock",
            name: "x",
            mode: "nat",
            cidr: "10.93.99.0/24",
          }),
        ),
      ),
    ).rejects.toThrow(
      /^libvirt: cannot connect to qemu:\/\/\/system\?socket=\/nonexistent\/libvirt-sock: Failed to connect socket to '\/nonexistent\/libvirt-sock': No such file or directory/,
    );
    await expect(
      volumeProvider.create(
        ok(checkVolume({ uri: "qemu+tcp://127.0.0.1:1/system", name: "x", pool: "p", size: 2 ** 20 })),
      ),
    ).rejects.toThrow(/^libvirt: cannot connect to qemu\+tcp:\/\/127\.0\.0\.1:1\/system: .*Connection refused/);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  test("the daemon holds nothing but the base image now", () => {
    expect(lv.inventory()).toEqual({ domains: [], networks: [], pools: [lv.pool], volumes: [base] });
  });
});
