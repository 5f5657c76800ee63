/**
 * systemd units of the image, checked by `systemd-analyze verify --root=ROOT`: ROOT is a temporary tree laid out
 * like the image (usr-merged, the host's own unit directory for the units ours depend on or extend, the image files
 * where the Containerfile copies them). verify also requires every Exec*= program to be executable under ROOT;
 * programs the image gets from Fedora packages are stand-in scripts there (the image build checks the real ones,
 * usr/share/edgepair/required-executables). Drop-ins are checked through the unit they extend (the host's
 * haproxy.service etc., as installed on this machine).
 *
 * Strict: any line verify prints (an unknown key is only a warning to systemd, the unit still loads) is a failure.
 */
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { run, type CheckResult } from "./run";

const HOST_UNITS = "/usr/lib/systemd/system";
const EXEC_KEY = /^(ExecStart|ExecStartPre|ExecStartPost|ExecReload|ExecStop|ExecStopPost|ExecCondition)\s*=\s*(.*)$/;

/** Absolute programs of a unit or drop-in's Exec*= lines (command prefixes -@:+! removed; resets skipped). */
export function execPrograms(unitText: string): string[] {
  const out: string[] = [];
  for (const line of unitText.split("\n")) {
    const m = EXEC_KEY.exec(line.trim());
    if (!m) continue;
    const program = (m[2] ?? "").replace(/^[-@:+!]+/, "").split(/\s+/)[0] ?? "";
    if (program.startsWith("/")) out.push(program);
  }
  return [...new Set(out)];
}

export interface ImageRoot {
  root: string;
  /** Absolute path in the image -> where it is under root. */
  at(path: string): string;
  cleanup(): void;
}

/**
 * A temporary root: usr-merge links, the host's units, then `trees` (a directory copied onto an image path), then a
 * stand-in script for each of `standIns` that no tree provided.
 */
export function buildImageRoot(
  trees: readonly { source: string; dest: string }[],
  standIns: readonly string[],
): ImageRoot {
  const root = mkdtempSync(join(tmpdir(), "ep-image-root-"));
  const at = (p: string) => join(root, p);
  for (const d of ["usr/bin", "usr/sbin", "usr/lib", "etc"]) mkdirSync(at(d), { recursive: true });
  for (const [link, target] of [
    ["bin", "usr/bin"],
    ["sbin", "usr/sbin"],
    ["lib", "usr/lib"],
  ] as const)
    symlinkSync(target, at(link));
  cpSync(HOST_UNITS, at(HOST_UNITS), { recursive: true });
  for (const t of trees) cpSync(t.source, at(t.dest), { recursive: true });
  for (const p of standIns) {
    if (existsSync(at(p))) continue;
    mkdirSync(dirname(at(p)), { recursive: true });
    writeFileSync(at(p), "#!/bin/sh\nexit 0\n");
    chmodSync(at(p), 0o755);
  }
  return { root, at, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** The host unit file of a package unit our drop-ins extend (its Exec programs need stand-ins too). */
export function hostUnitText(unit: string): string {
  return readFileSync(join(HOST_UNITS, unit), "utf8");
}

export function verifyUnits(root: string, units: readonly string[]): CheckResult {
  const r = run("systemd-analyze", ["verify", `--root=${root}`, ...units], { timeoutMs: 60_000 });
  const ok = r.status === 0 && r.output.trim() === "";
  return { ok, output: r.output.trim() || (ok ? "" : `systemd-analyze exited ${r.status}`) };
}
