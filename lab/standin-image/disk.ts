/**
 * From a finished root directory to a compressed qcow2: a sparse raw disk with one MBR partition (so cloud-init's
 * growpart can grow it into a larger VM disk), ext4 populated by `mke2fs -d` (no mount, no copy through the
 * kernel), extlinux + syslinux' MBR for a BIOS boot, then `qemu-img convert -c`.
 */
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, ftruncateSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { run } from "./run";

const MiB = 2 ** 20;
const MINUTE = 60_000;
/** The image's virtual size: what a VM disk made from it has at least. ~1.2 GiB of it is used. */
export const DISK_BYTES = 4 * 2 ** 30;
export const PARTITION_OFFSET = 1 * MiB;
export const ROOT_LABEL = "edgepair-root";

export interface DiskInput {
  rootfs: string;
  /** The root filesystem's UUID (the kernel command line and fstab name it). */
  uuid: string;
  workDir: string;
  qcow2: string;
  log: string;
}

export function rootfsBytes(rootfs: string): number {
  // du: apparent sizes would miss the filesystem's block rounding; -x stays on the root's filesystem
  const out = execFileSync("du", ["-sxB1", rootfs], { encoding: "utf8" });
  return Number(out.split(/\s/)[0]);
}

export async function makeDisk(i: DiskInput, onStep: (what: string) => void): Promise<void> {
  const partitionBytes = DISK_BYTES - PARTITION_OFFSET;
  const used = rootfsBytes(i.rootfs);
  if (used > partitionBytes * 0.8) {
    throw new Error(
      `the root holds ${Math.round(used / MiB)} MiB, more than 80% of the ${partitionBytes / MiB} MiB partition: raise DISK_BYTES in lab/standin-image/disk.ts`,
    );
  }
  const raw = join(i.workDir, "disk.raw");
  const fd = openSync(raw, "w");
  try {
    ftruncateSync(fd, DISK_BYTES); // sparse
  } finally {
    closeSync(fd);
  }

  onStep(`ext4 (${Math.round(used / MiB)} MiB used) in a ${DISK_BYTES / 2 ** 30} GiB disk`);
  await run(["sfdisk", "--quiet", raw], {
    log: i.log,
    timeoutMs: MINUTE,
    input: `label: dos\nstart=${PARTITION_OFFSET / 512}, type=83, bootable\n`,
  });
  await run(
    [
      "mke2fs",
      "-q",
      "-F",
      "-t",
      "ext4",
      "-L",
      ROOT_LABEL,
      "-U",
      i.uuid,
      "-d",
      i.rootfs,
      "-E",
      `offset=${PARTITION_OFFSET}`,
      raw,
      `${partitionBytes / 1024}k`,
    ],
    { log: i.log, timeoutMs: 20 * MINUTE },
  );

  onStep("extlinux and the MBR boot code");
  const mnt = join(i.workDir, "mnt");
  mkdirSync(mnt, { recursive: true });
  await run(
    [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      join(__dirname, "install-bootloader.sh"),
      raw,
      String(PARTITION_OFFSET),
      String(partitionBytes),
      mnt,
    ],
    { log: i.log, timeoutMs: 5 * MINUTE },
  );

  onStep("qemu-img convert -c -O qcow2");
  const partial = `${i.qcow2}.partial`;
  try {
    await run(["qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", raw, partial], {
      log: i.log,
      timeoutMs: 30 * MINUTE,
    });
    renameSync(partial, i.qcow2);
  } finally {
    rmSync(partial, { force: true });
    rmSync(raw, { force: true });
  }
}
