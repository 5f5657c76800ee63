/**
 * The stand-in image (lab/standin-image, issue 11 item 1). Always: how its inputs are read and hashed. Opt-in with
 * EDGEPAIR_E2E=1, as root: build it (or take it from the cache), then boot it under QEMU with a NoCloud seed and two
 * NICs and wait, bounded, for cloud-init's final line and the user-data's marker on the serial console.
 */
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import {
  guestAccel,
  kvmOpens,
  makeOverlay,
  makeSeedIso,
  startVm,
  stopVm,
  waitForSerial,
  type Vm,
} from "../lab/standin-image/boot";
import { buildStandinImage, imagePaths, type StandinImage } from "../lab/standin-image/builder";
import { extlinuxConf, kernelVersion } from "../lab/standin-image/image";
import { baseHash, IMAGES_ROOTFS, imageHash, listRootfsFiles } from "../lab/standin-image/inputs";
import { parseAptSources, renderSources } from "../lab/standin-image/mirror";

const MINUTE = 60_000;
const E2E = process.env.EDGEPAIR_E2E === "1" && process.getuid?.() === 0;
const e2e = E2E ? describe : describe.skip;
const e2eTitle = E2E
  ? "stand-in image, built and booted under QEMU"
  : "stand-in image, built and booted under QEMU (skipped: opt-in with EDGEPAIR_E2E=1 as root; debootstraps Debian and boots it, ~15-30 min the first time)";

describe("stand-in image inputs", () => {
  test("the host's apt sources name the mirror, in both formats; comments and other types are ignored", () => {
    const deb822 = [
      "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main",
      "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main",
      "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main",
    ].join("\n\n");
    expect(parseAptSources(deb822, true)).toEqual([
      { uri: "http://mirror.example/debian", suites: ["bookworm", "bookworm-updates"] },
      { uri: "http://mirror.example/debian-security", suites: ["bookworm-security"] },
    ]);
    expect(
      parseAptSources(
        "# deb http://old.example/ bookworm main\ndeb [arch=amd64] http://m.example/debian bookworm main\ndeb-src http://s.example bookworm main\n",
        false,
      ),
    ).toEqual([{ uri: "http://m.example/debian", suites: ["bookworm"] }]);
    const sources = renderSources("bookworm", {
      main: "http://m.example/debian",
      security: "http://m.example/debian-security",
    });
    expect(parseAptSources(sources, true)).toEqual([
      { uri: "http://m.example/debian", suites: ["bookworm", "bookworm-updates"] },
      { uri: "http://m.example/debian-security", suites: ["bookworm-security"] },
    ]);
  });

  test("every file of images/rootfs is an input: changing one byte or its mode changes the image's hash, not the base's", () => {
    const dir = mkdtempSync(join(tmpdir(), "standin-inputs-"));
    try {
      const rootfs = join(dir, "rootfs");
      cpSync(IMAGES_ROOTFS, rootfs, { recursive: true });
      const agent = join(dir, "agent.js");
      writeFileSync(agent, "console.log('agent')\n");
      const files = listRootfsFiles(rootfs);
      expect(files.map((f) => f.target)).toContain("/usr/lib/systemd/system/edgepair-agent.service");
      expect(files.map((f) => f.target)).toContain("/etc/cloud/cloud.cfg.d/50-edgepair.cfg");
      const mirrors = { main: "http://m.example/debian" };
      const base = baseHash(mirrors);
      const before = imageHash(base, agent, files);
      expect(imageHash(base, agent, listRootfsFiles(rootfs))).toBe(before);

      const unit = join(rootfs, "usr/lib/systemd/system/edgepair-agent.service");
      writeFileSync(unit, `${readFileSync(unit, "utf8")}\n`);
      const edited = imageHash(base, agent, listRootfsFiles(rootfs));
      expect(edited).not.toBe(before);
      execFileSync("chmod", ["+x", unit]);
      expect(imageHash(base, agent, listRootfsFiles(rootfs))).not.toBe(edited);

      writeFileSync(agent, "console.log('agent 2')\n");
      expect(imageHash(base, agent, files)).not.toBe(before);
      expect(baseHash(mirrors)).toBe(base);
      expect(baseHash({ main: "http://other.example/debian" })).not.toBe(base);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("extlinux boots the one kernel with the root by UUID and the console on the serial port", () => {
    const conf = extlinuxConf("6.1.0-99-amd64", "0123abcd-0000-4000-8000-000000000000");
    expect(conf).toMatch(/^ {2}LINUX \/boot\/vmlinuz-6\.1\.0-99-amd64$/m);
    expect(conf).toMatch(/^ {2}INITRD \/boot\/initrd\.img-6\.1\.0-99-amd64$/m);
    expect(conf).toMatch(/APPEND root=UUID=0123abcd-0000-4000-8000-000000000000 .*console=ttyS0,115200n8$/m);
    const dir = mkdtempSync(join(tmpdir(), "standin-boot-"));
    try {
      execFileSync("mkdir", ["-p", join(dir, "boot")]);
      expect(() => kernelVersion(dir)).toThrow(/expected one kernel, found 0/);
      writeFileSync(join(dir, "boot", "vmlinuz-6.1.0-1-amd64"), "");
      expect(kernelVersion(dir)).toBe("6.1.0-1-amd64");
      writeFileSync(join(dir, "boot", "vmlinuz-6.1.0-2-amd64"), "");
      expect(() => kernelVersion(dir)).toThrow(/found 2/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("guestAccel remembers its answer for one boot of the host", () => {
  // A disk that does not exist: a probe of it under KVM ends at once with TCG, so an answer of KVM can only come from
  // the memo. Where /dev/kvm does not open no probe runs and no memo is read.
  test("a memo of this boot is taken; one of another boot, or unreadable, is probed again and replaced", async () => {
    const dir = mkdtempSync(join(tmpdir(), "standin-accel-"));
    try {
      const memo = join(dir, "image.accel.json");
      const disk = join(dir, "missing.qcow2");
      const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
      if (!kvmOpens()) {
        expect(await guestAccel(disk, dir, { memo })).toEqual({ accel: "tcg", why: "no usable /dev/kvm: TCG" });
        return;
      }
      writeFileSync(memo, JSON.stringify({ bootId, accel: "kvm", why: "planted" }));
      expect(await guestAccel(disk, dir, { memo })).toEqual({
        accel: "kvm",
        why: `planted (remembered for this boot: ${memo})`,
      });
      for (const stale of [JSON.stringify({ bootId: "another-boot", accel: "kvm", why: "planted" }), "{not json"]) {
        writeFileSync(memo, stale);
        const probed = await guestAccel(disk, dir, { memo, timeoutMs: 10_000 });
        expect(probed.accel).toBe("tcg");
        expect(probed.why).not.toMatch(/remembered/);
        expect(JSON.parse(readFileSync(memo, "utf8"))).toEqual({ bootId, ...probed });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

e2e(e2eTitle, () => {
  let image: StandinImage;

  beforeAll(async () => {
    image = await buildStandinImage({ out: (line) => process.stdout.write(`${line}\n`) });
  }, 120 * MINUTE);

  test("the image is a compressed qcow2 named by its inputs, with the images/rootfs files and the agent", () => {
    const info = JSON.parse(execFileSync("qemu-img", ["info", "--output=json", image.path], { encoding: "utf8" })) as {
      format: string;
      "virtual-size": number;
    };
    expect(info.format).toBe("qcow2");
    expect(info["virtual-size"]).toBe(image.manifest.virtualBytes);
    expect(image.path).toBe(
      imagePaths(process.env.EDGEPAIR_STANDIN_CACHE || "/var/cache/edgepair-standin", image.manifest.hash).qcow2,
    );
    expect(image.manifest.rootfsFiles).toEqual(listRootfsFiles().map((f) => f.target));
    expect(image.manifest.facts.node).toMatch(/^v\d+\./);
    expect(image.manifest.facts.agent).toMatch(/\S/);
    process.stdout.write(
      `stand-in: ${image.path} ${(image.manifest.qcow2Bytes / 2 ** 20).toFixed(0)} MiB, built in ${image.manifest.buildSeconds} s; ` +
        `kernel ${image.manifest.facts.kernel}, node ${image.manifest.facts.node}, cloud-init ${image.manifest.facts.cloudInit}\n`,
    );
  });

  test(
    "a second build with the same inputs is a cache hit",
    async () => {
      const lines: string[] = [];
      const again = await buildStandinImage({ out: (l) => lines.push(l) });
      expect(again.cached).toBe(true);
      expect(again.path).toBe(image.path);
      expect(lines).toEqual([`cached: ${image.path}`]);
    },
    5 * MINUTE,
  );

  test(
    "boots under QEMU: cloud-init reads the NoCloud seed, sets the hostname, writes the marker and finishes",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "standin-boot-"));
      let vm: Vm | undefined;
      try {
        const marker = randomBytes(8).toString("hex");
        const hostname = "standin-smoke";
        const log = join(dir, "test.log");
        // Minimal: a hostname and a marker file; the one runcmd line reads both back onto the serial console, with
        // what the VM runs (node, the agent) and the root's size (growpart grew it into the larger overlay).
        const userData = [
          "#cloud-config",
          `hostname: ${hostname}`,
          "write_files:",
          "  - path: /var/lib/standin-smoke/marker",
          `    content: "${marker}"`,
          "runcmd:",
          `  - [sh, -c, 'echo "standin-smoke: host=$(hostname) marker=$(cat /var/lib/standin-smoke/marker) node=$(node --version) agent=$(node /usr/libexec/edgepair/edgepair-agent.js --version) rootBytes=$(findmnt -bno SIZE /) failed=$(systemctl --failed --plain --no-legend | cut -d" " -f1 | paste -sd, -)" >/dev/console']`,
          "",
        ].join("\n");
        const seed = await makeSeedIso({ dir, instanceId: `standin-smoke-${marker}`, userData, log });
        const overlay = join(dir, "disk.qcow2");
        await makeOverlay(image.path, overlay, 6 * 2 ** 30, log);
        const serial = join(dir, "serial.log");
        const { accel, why } = await guestAccel(image.path, dir, { memo: image.accelMemo });
        process.stdout.write(`stand-in boot: ${why}\n`);
        vm = startVm({
          disk: overlay,
          seedIso: seed,
          serialLog: serial,
          macs: ["52:54:00:e9:00:01", "52:54:00:e9:00:02"],
          memoryMiB: 1536,
          maxSeconds: 12 * 60,
          accel,
        });
        const seen = await waitForSerial(
          vm,
          serial,
          // kernel: the line guestAccel waits for under KVM, so its probe looks for what this kernel prints
          {
            kernel: /Linux version \d/,
            finished: /Cloud-init v\. \S+ finished at .*Datasource DataSourceNoCloud/,
            marker: /standin-smoke: host=/,
          },
          10 * MINUTE,
        );
        const line = seen.marker.line;
        expect(line).toContain(`host=${hostname} `);
        expect(line).toContain(`marker=${marker} `);
        expect(line).toContain(`node=${image.manifest.facts.node} `);
        expect(line).toContain(`agent=${image.manifest.facts.agent} `);
        const rootBytes = Number(/rootBytes=(\d+)/.exec(line)?.[1]);
        expect(rootBytes).toBeGreaterThan(5 * 2 ** 30); // grown from the image's 4 GiB into the 6 GiB overlay
        expect(/failed=(\S*)/.exec(line)?.[1]).toBe("");
        const uptime = /Up ([\d.]+) seconds/.exec(seen.finished.line)?.[1];
        process.stdout.write(
          `stand-in boot (${vm.accel}): cloud-init finished ${(seen.finished.afterMs / 1000).toFixed(0)} s after QEMU started ` +
            `(guest uptime ${uptime ?? "?"} s); ${line.trim()}\n`,
        );
      } finally {
        if (vm) await stopVm(vm);
        rmSync(dir, { recursive: true, force: true });
      }
      expect(vm?.exited()).toBe(true);
    },
    15 * MINUTE,
  );
});
