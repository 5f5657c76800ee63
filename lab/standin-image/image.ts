/**
 * The image stage: a copy of the base root, then what images/Containerfile puts in the appliance (images/rootfs at
 * /, the agent bundle at /usr/libexec/edgepair/edgepair-agent.js), the stand-in's own boot files, and customize.sh
 * inside the chroot (the Containerfile's enable/disable and required-programs check, the clean-up).
 */
import { chmodSync, copyFileSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { RootfsFile } from "./inputs";
import { run } from "./run";

const MINUTE = 60_000;
export const AGENT_PATH = "/usr/libexec/edgepair/edgepair-agent.js";
/** Where cloud-init looks for its seed: the NoCloud ISO (label cidata) libvirt's CloudInitDisk and the test attach. */
export const DATASOURCE_CFG = "/etc/cloud/cloud.cfg.d/90-edgepair-standin.cfg";
/** console=ttyS0 last: /dev/console is the serial port, where systemd and cloud-init's final line go. */
export const KERNEL_ARGS = "ro console=tty0 console=ttyS0,115200n8";

export interface ImageStageInput {
  baseRootfs: string;
  workDir: string;
  rootfsFiles: readonly RootfsFile[];
  agentBundle: string;
  uuid: string;
  log: string;
}

export interface ImageFacts {
  kernel: string;
  node: string;
  agent: string;
  cloudInit: string;
}

function put(rootfs: string, target: string, content: string, mode = 0o644): void {
  const p = join(rootfs, target);
  mkdirSync(dirname(p), { recursive: true, mode: 0o755 });
  writeFileSync(p, content);
  chmodSync(p, mode);
}

/** The one kernel the base installed (linux-image-amd64 pulls exactly one). */
export function kernelVersion(rootfs: string): string {
  const versions = readdirSync(join(rootfs, "boot"))
    .filter((f) => f.startsWith("vmlinuz-"))
    .map((f) => f.slice("vmlinuz-".length));
  if (versions.length !== 1)
    throw new Error(`${rootfs}/boot: expected one kernel, found ${versions.length} (${versions.join(", ")})`);
  return versions[0] as string;
}

export function extlinuxConf(kernel: string, uuid: string): string {
  return [
    "# edgepair stand-in: one entry, no menu; the serial port as well, for a bootloader problem under -nographic",
    "SERIAL 0 115200",
    "DEFAULT debian",
    "PROMPT 0",
    "TIMEOUT 1",
    "LABEL debian",
    `  LINUX /boot/vmlinuz-${kernel}`,
    `  INITRD /boot/initrd.img-${kernel}`,
    `  APPEND root=UUID=${uuid} ${KERNEL_ARGS}`,
    "",
  ].join("\n");
}

export async function makeImageRoot(
  i: ImageStageInput,
  onStep: (what: string) => void,
): Promise<{ rootfs: string; facts: ImageFacts }> {
  const rootfs = join(i.workDir, "rootfs");
  onStep("copy of the base root");
  await run(["cp", "-a", "--reflink=auto", i.baseRootfs, rootfs], { log: i.log, timeoutMs: 15 * MINUTE });

  onStep(`images/rootfs (${i.rootfsFiles.length} files), the agent bundle, the boot files`);
  for (const f of i.rootfsFiles) {
    const p = join(rootfs, f.target);
    mkdirSync(dirname(p), { recursive: true, mode: 0o755 });
    copyFileSync(f.source, p);
    chmodSync(p, f.mode);
  }
  const agent = join(rootfs, AGENT_PATH);
  mkdirSync(dirname(agent), { recursive: true, mode: 0o755 });
  copyFileSync(i.agentBundle, agent);
  chmodSync(agent, 0o755);

  const kernel = kernelVersion(rootfs);
  put(rootfs, "/boot/extlinux/extlinux.conf", extlinuxConf(kernel, i.uuid));
  put(rootfs, "/etc/fstab", `UUID=${i.uuid} / ext4 errors=remount-ro 0 1\n`);
  put(rootfs, "/etc/hostname", "edgepair-standin\n");
  put(
    rootfs,
    DATASOURCE_CFG,
    [
      "# edgepair stand-in: the seed is a NoCloud ISO (label cidata); None keeps a VM without one bootable.",
      "datasource_list: [NoCloud, None]",
      "# Debian's cloud-init would generate and set en_US.UTF-8, which minbase's locale-gen cannot make (its cc_locale",
      "# then fails cloud-config.service); C.UTF-8 is built into glibc and needs no generation.",
      "locale: C.UTF-8",
      "",
    ].join("\n"),
  );

  onStep("customize.sh in the chroot (units, required programs, node, clean-up)");
  const script = "/tmp/edgepair-standin-customize.sh";
  copyFileSync(join(__dirname, "customize.sh"), join(rootfs, script));
  const out = await run(
    [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      'mount -t proc proc "$1/proc" && exec chroot "$1" sh "$2"',
      "sh",
      rootfs,
      script,
    ],
    { log: i.log, timeoutMs: 10 * MINUTE, capture: true },
  );
  const fact = (name: string) => {
    const m = new RegExp(`^standin-fact: ${name} (.+)$`, "m").exec(out);
    if (!m) throw new Error(`customize.sh printed no "standin-fact: ${name}" line (log: ${i.log})`);
    return (m[1] as string).trim();
  };
  return { rootfs, facts: { kernel, node: fact("node"), agent: fact("agent"), cloudInit: fact("cloud-init") } };
}
