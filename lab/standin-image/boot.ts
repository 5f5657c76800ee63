/**
 * Booting the stand-in image directly under QEMU, for its smoke test (test/standin-image.test.ts): a copy-on-write
 * overlay on the cached qcow2 (the image itself is never written), a NoCloud seed ISO, NICs on QEMU's user network
 * with restrict=on (DHCP from QEMU, no route anywhere), the serial console to a file. KVM when the guest's kernel
 * runs under it (guestAccel), else TCG. The caller stops the VM by PID (stopVm), also on failure; timeout(1) bounds
 * its life regardless.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "./run";

export interface SeedInput {
  dir: string;
  instanceId: string;
  userData: string;
  log: string;
}

/** A NoCloud seed: ISO 9660, volume id cidata, user-data and meta-data at its root. */
export async function makeSeedIso(s: SeedInput): Promise<string> {
  writeFileSync(join(s.dir, "user-data"), s.userData);
  writeFileSync(join(s.dir, "meta-data"), `instance-id: ${s.instanceId}\n`);
  const iso = join(s.dir, "seed.iso");
  await run(
    [
      "genisoimage",
      "-quiet",
      "-output",
      iso,
      "-volid",
      "cidata",
      "-joliet",
      "-rock",
      join(s.dir, "user-data"),
      join(s.dir, "meta-data"),
    ],
    {
      log: s.log,
      timeoutMs: 60_000,
    },
  );
  return iso;
}

/** An overlay of `base` with a larger virtual size, so the first boot's growpart has something to grow. */
export async function makeOverlay(base: string, overlay: string, bytes: number, log: string): Promise<void> {
  await run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay, String(bytes)], {
    log,
    timeoutMs: 60_000,
  });
}

export type Accel = "kvm" | "tcg";

export interface VmInput {
  disk: string;
  /** Absent: no seed (the accelerator probe only needs the kernel to start). */
  seedIso?: string;
  serialLog: string;
  macs: readonly string[];
  memoryMiB: number;
  /** QEMU runs under timeout(1): even when the test process dies without its clean-up, the VM ends after this. */
  maxSeconds: number;
  accel: Accel;
  /** Writes go to a temporary file QEMU drops on exit (the probe boots the cached image itself). */
  snapshot?: boolean;
}

export interface Vm {
  pid: number;
  accel: Accel;
  startedAt: number;
  exited: () => boolean;
  /** The last 4000 characters QEMU wrote to stderr. */
  stderr: () => string;
  /** Resolves when QEMU has exited. */
  whenExited: Promise<number | null>;
}

export function startVm(v: VmInput): Vm {
  // no MACs: no NIC at all (QEMU would otherwise add its default one, on an unrestricted user network)
  const nics =
    v.macs.length === 0
      ? ["-nic", "none"]
      : v.macs.flatMap((mac, i) => [
          "-netdev",
          `user,id=n${i},restrict=on`,
          "-device",
          `virtio-net-pci,netdev=n${i},mac=${mac}`,
        ]);
  const argv = [
    "-accel",
    v.accel,
    "-m",
    String(v.memoryMiB),
    "-smp",
    "1",
    "-nographic",
    "-serial",
    `file:${v.serialLog}`,
    "-monitor",
    "none",
    // a panic or a reboot ends QEMU instead of looping until the timeout
    "-no-reboot",
    "-drive",
    `file=${v.disk},if=virtio,format=qcow2`,
    ...(v.seedIso ? ["-drive", `file=${v.seedIso},media=cdrom,readonly=on`] : []),
    ...(v.snapshot ? ["-snapshot"] : []),
    ...nics,
  ];
  // timeout passes our SIGTERM on to QEMU, and SIGKILLs it 10 s after its own deadline
  const child = spawn("timeout", ["--kill-after=10", String(v.maxSeconds), "qemu-system-x86_64", ...argv], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  if (child.pid === undefined)
    throw new Error("qemu-system-x86_64 did not start (is qemu-system-x86 installed? tools/setup)");
  let exited = false;
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-4000)));
  const whenExited = new Promise<number | null>((resolve) =>
    child.on("close", (code) => {
      exited = true;
      resolve(code);
    }),
  );
  return {
    pid: child.pid,
    accel: v.accel,
    startedAt: Date.now(),
    exited: () => exited,
    stderr: () => stderr,
    whenExited,
  };
}

/** SIGTERM to timeout(1), which passes it to QEMU (it exits at once; the overlay is thrown away anyway); SIGKILL if still there after 10 s. */
export async function stopVm(vm: Vm): Promise<void> {
  if (vm.exited()) return;
  try {
    process.kill(vm.pid, "SIGTERM");
  } catch {
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const killed = await Promise.race([
    vm.whenExited.then(() => true),
    new Promise<false>((r) => (timer = setTimeout(() => r(false), 10_000))),
  ]);
  clearTimeout(timer);
  if (!killed) {
    try {
      process.kill(-vm.pid, "SIGKILL"); // timeout(1) leads its own process group, QEMU included
    } catch {
      /* gone */
    }
    await vm.whenExited;
  }
}

export interface SerialMatch {
  line: string;
  /** Milliseconds from the VM's start to the line's first sighting. */
  afterMs: number;
}

/**
 * Waits until every pattern matched a line of the serial log, polling once a second, at most timeoutMs. Throws
 * (with the log's tail) on timeout or when QEMU exits first.
 */
export async function waitForSerial(
  vm: Vm,
  serialLog: string,
  patterns: Record<string, RegExp>,
  timeoutMs: number,
): Promise<Record<string, SerialMatch>> {
  const found: Record<string, SerialMatch> = {};
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = existsSync(serialLog) ? readFileSync(serialLog, "utf8") : "";
    for (const [name, re] of Object.entries(patterns)) {
      if (found[name]) continue;
      const line = text.split(/\r?\n/).find((l) => re.test(l));
      if (line !== undefined) found[name] = { line, afterMs: Date.now() - vm.startedAt };
    }
    if (Object.keys(found).length === Object.keys(patterns).length) return found;
    const missing = Object.keys(patterns).filter((n) => !found[n]);
    const tail = text.split(/\r?\n/).slice(-40).join("\n");
    if (vm.exited())
      throw new Error(
        `QEMU exited before the serial console showed: ${missing.join(", ")}; stderr: ${vm.stderr().trim()}; the console's last lines:\n${tail}`,
      );
    if (Date.now() > deadline)
      throw new Error(
        `no ${missing.join(", ")} on the serial console within ${Math.round(timeoutMs / 1000)} s; its last lines:\n${tail}`,
      );
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export interface AccelChoice {
  accel: Accel;
  /** One line for the test's log: what was found. */
  why: string;
}

/** /dev/kvm opens read-write: QEMU and libvirt will take KVM guests (which need not boot: see guestAccel). */
export function kvmOpens(): boolean {
  try {
    closeSync(openSync("/dev/kvm", "r+"));
    return true;
  } catch {
    return false;
  }
}

/**
 * The accelerator `disk`'s own kernel runs under on this host. A /dev/kvm that opens is not enough: where KVM is PVM
 * (the kvm_pvm module; no vmx/svm in /proc/cpuinfo) QEMU starts and libvirt reports KVM, but only a PVM-enabled
 * guest kernel runs. Debian's kernel stops silently after "Probing EDD" there (measured: no kernel line in 40 s under
 * KVM; under TCG its first lines come within 3 s). So the disk boots under KVM, with writes thrown away, until the
 * kernel's first line reaches the serial console, bounded by timeoutMs; the VM is stopped either way. With `memo`
 * (StandinImage.accelMemo) the answer is kept for this boot of the host: CI's two VM suites paid the probe twice.
 */
export async function guestAccel(
  disk: string,
  workDir: string,
  opts: { timeoutMs?: number; memo?: string } = {},
): Promise<AccelChoice> {
  if (!kvmOpens()) return { accel: "tcg", why: "no usable /dev/kvm: TCG" };
  // the answer depends on the host's kernel and the guest's only: a memo beside the image holds for this boot
  const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  const remembered = opts.memo ? readMemo(opts.memo, bootId) : undefined;
  if (remembered) return { accel: remembered.accel, why: `${remembered.why} (remembered for this boot: ${opts.memo})` };
  const choice = await probeKvm(disk, workDir, opts.timeoutMs ?? 45_000);
  if (opts.memo) {
    writeFileSync(`${opts.memo}.tmp`, `${JSON.stringify({ bootId, ...choice })}\n`);
    renameSync(`${opts.memo}.tmp`, opts.memo);
  }
  return choice;
}

async function probeKvm(disk: string, workDir: string, timeoutMs: number): Promise<AccelChoice> {
  const serialLog = join(workDir, "kvm-probe-serial.log");
  const vm = startVm({
    disk,
    serialLog,
    macs: [],
    memoryMiB: 512,
    maxSeconds: Math.ceil(timeoutMs / 1000) + 15,
    accel: "kvm",
    snapshot: true,
  });
  try {
    const seen = await waitForSerial(vm, serialLog, { kernel: /Linux version \d/ }, timeoutMs);
    return {
      accel: "kvm",
      why: `KVM: the guest's kernel printed its first line ${(seen.kernel.afterMs / 1000).toFixed(1)} s after QEMU started`,
    };
  } catch {
    return {
      accel: "tcg",
      why: `/dev/kvm opens, but the guest's kernel printed nothing under KVM within ${Math.round(timeoutMs / 1000)} s (a PVM host?): TCG`,
    };
  } finally {
    await stopVm(vm);
  }
}

function readMemo(path: string, bootId: string): AccelChoice | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const m = JSON.parse(readFileSync(path, "utf8")) as Partial<AccelChoice & { bootId: string }>;
    return m.bootId === bootId && (m.accel === "kvm" || m.accel === "tcg") && typeof m.why === "string"
      ? { accel: m.accel, why: m.why }
      : undefined;
  } catch {
    return undefined; // unreadable: probe again
  }
}
