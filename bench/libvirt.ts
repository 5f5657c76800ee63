/**
 * Create and destroy the two-network, two-domain libvirt lab (test/engine/programs/libvirt-lab) through the real
 * Pulumi engine against a private libvirtd (test/fixtures/libvirtd.ts), `runs` times on one stack: preview, up,
 * refresh, destroy, each timed, and each destroy checked to leave nothing but the base image. Needs root, the
 * engines (./tools/build-engines) and the libvirt packages (tools/debian-packages.txt).
 */
import { PulumiWorkspace } from "../test/engine/pulumi-program";
import { libvirtWorkspaceFiles, makeBaseImage, startLibvirtd } from "../test/fixtures/libvirtd";
import { summarize, Summary } from "./stats";

export interface LibvirtBenchRun {
  run: number;
  previewMs: number;
  upMs: number;
  refreshMs: number;
  destroyMs: number;
}

export interface LibvirtBenchResult {
  lab: string;
  virtType: "kvm" | "qemu";
  daemonStartMs: number;
  workspaceMs: number;
  daemonStopMs: number;
  runs: LibvirtBenchRun[];
  /** Per step over the runs (milliseconds). */
  summary: Record<"preview" | "up" | "refresh" | "destroy" | "upPlusDestroy", Summary>;
}

const STEPS = ["preview", "up", "refresh", "destroy"] as const;

export async function benchLibvirt(opts: { runs: number }): Promise<LibvirtBenchResult> {
  const t0 = Date.now();
  const lv = await startLibvirtd();
  const daemonStartMs = Date.now() - t0;
  let ws: PulumiWorkspace | undefined;
  try {
    const base = makeBaseImage(lv);
    const t1 = Date.now();
    ws = await PulumiWorkspace.create({
      name: "libvirt-lab",
      files: libvirtWorkspaceFiles("libvirt-lab"),
      config: { pool: lv.pool, base, prefix: "epbench" },
      env: { EDGEPAIR_LIBVIRT_URI: lv.uri },
    });
    const workspaceMs = Date.now() - t1;
    const runs: LibvirtBenchRun[] = [];
    for (let run = 1; run <= opts.runs; run++) {
      const time = async (fn: () => Promise<unknown>) => {
        const s = Date.now();
        await fn();
        return Date.now() - s;
      };
      const previewMs = await time(() => ws!.preview());
      const upMs = await time(() => ws!.up());
      const inv = lv.inventory();
      if (inv.domains.length !== 2 || inv.networks.length !== 2) throw new Error(`lab up made ${JSON.stringify(inv)}`);
      const refreshMs = await time(() => ws!.refresh({ expectNoChanges: true }));
      const destroyMs = await time(() => ws!.destroy());
      const left = lv.inventory();
      if (left.domains.length + left.networks.length > 0 || left.volumes.length !== 1)
        throw new Error(`lab destroy left ${JSON.stringify(left)}`);
      runs.push({ run, previewMs, upMs, refreshMs, destroyMs });
      console.log(`run ${run}: up ${(upMs / 1000).toFixed(1)} s, destroy ${(destroyMs / 1000).toFixed(1)} s`);
    }
    await ws.dispose();
    ws = undefined;
    const virtType: "kvm" | "qemu" = lv.kvm ? "kvm" : "qemu";
    const t2 = Date.now();
    const report = await lv.stop();
    if (report.leftovers.length > 0) throw new Error(`left in libvirtd: ${report.leftovers.join(", ")}`);
    const pick = (k: keyof LibvirtBenchRun) => runs.map((r) => r[k]);
    const summary = Object.fromEntries(
      STEPS.map((s) => [s, summarize(pick(`${s}Ms` as keyof LibvirtBenchRun))]),
    ) as LibvirtBenchResult["summary"];
    summary.upPlusDestroy = summarize(runs.map((r) => r.upMs + r.destroyMs));
    return {
      lab: "2 networks (isolated + NAT with a floating-IP route), 2 domains (disk overlay + cloud-init seed each)",
      virtType,
      daemonStartMs,
      workspaceMs,
      daemonStopMs: Date.now() - t2,
      runs,
      summary,
    };
  } finally {
    if (ws) await ws.dispose().catch(() => undefined);
    await lv.stop().catch(() => undefined);
  }
}
