/**
 * The image switch's effects on a real LB (driver.ts SwitchHost): bootc, `systemctl reboot`, keepalived as a
 * systemd unit held down across the switch reboot, the kernel's count of the peer's adverts, and the health gate.
 *
 * The hold: the image's keepalived.service carries `ConditionPathExists=!/var/lib/edgepair/keepalived.hold`. The
 * agent writes that file just before every reboot it causes (into the target, or back after a rollback) and removes
 * it just before it starts keepalived itself, so a switched LB boots with keepalived down — it must not advertise
 * (and perhaps take the VIPs with an untried image) before the plan has seen the peer. /var survives a switch.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { CommandRunner } from "../apply/reload";
import { backendsHealthy } from "../haproxy/health";
import { activeState, BOOTSTRAP_UNITS } from "../services";
import { bootcClient, systemctlReboot, type BootcOptions } from "./bootc";
import type { KeepalivedControl, SwitchHost } from "./driver";
import { probePeerAdverts } from "./peer-adverts";
import type { StatusVrrpState } from "../../render/vrrp-state";
import type { GateResult } from "./plan";

export const KEEPALIVED_HOLD_FILE = "keepalived.hold";

export interface LbSwitchHostOptions {
  runner: CommandRunner;
  /** /var/lib/edgepair on the VM: the hold file lives here. */
  stateDir: string;
  /** keepalived's state while it runs (the agent's view from the notify FIFO). */
  vrrpState: () => Promise<StatusVrrpState>;
  /** The peer's private address: the source of the adverts the probe counts. */
  peerAddress: string;
  /** The VRRP advert interval; the probe counts for a few of them. */
  advertIntervalSeconds: number;
  haproxySocket: string;
  bootc?: BootcOptions;
}

/** Every managed service but keepalived (held across a switch, so it cannot count towards "services up"). */
const SERVING_UNITS = BOOTSTRAP_UNITS.filter((u) => u.service !== "keepalived").map((u) => u.unit);

export function holdFilePath(stateDir: string): string {
  return join(stateDir, KEEPALIVED_HOLD_FILE);
}

export function keepalivedHeld(stateDir: string): boolean {
  return existsSync(holdFilePath(stateDir));
}

/** keepalived held across the reboots the switch causes (see the module comment). */
export function heldKeepalived(base: KeepalivedControl, stateDir: string): KeepalivedControl & { hold(): void } {
  const file = holdFilePath(stateDir);
  return {
    ...base,
    hold: () => {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      writeFileSync(file, "held by the edgepair agent across an image switch reboot\n", { mode: 0o600 });
    },
    start: async () => {
      rmSync(file, { force: true });
      await base.start();
    },
  };
}

export function lbSwitchHost(o: LbSwitchHostOptions): SwitchHost {
  const bootc = bootcClient(o.runner, o.bootc);
  const keepalived = heldKeepalived(systemdKeepalived(o.runner, o.vrrpState), o.stateDir);
  const downUnits = async (): Promise<string[]> => {
    const states = await Promise.all(SERVING_UNITS.map(async (u) => [u, await activeState(o.runner, u)] as const));
    return states.filter(([, s]) => s !== "active").map(([u, s]) => `${u} is ${s}`);
  };
  return {
    bootc,
    reboot: async () => {
      keepalived.hold();
      await systemctlReboot(o.runner);
    },
    keepalived,
    peerAdvertsSeen: async () => {
      const windowMs = Math.max(1000, Math.round(o.advertIntervalSeconds * 5 * 1000));
      return (await probePeerAdverts({ runner: o.runner, peer: o.peerAddress, windowMs })).seen;
    },
    servicesUp: async () => (await downUnits()).length === 0,
    healthGate: async (): Promise<GateResult> => {
      const down = await downUnits();
      const backends = await backendsHealthy(o.haproxySocket);
      return { ok: down.length === 0 && backends.ok, failures: [...down, ...backends.failures] };
    },
  };
}

/** keepalived as the systemd unit `unit`; its VRRP state comes from elsewhere (the notify FIFO, agent/vrrp). */
export function systemdKeepalived(
  runner: CommandRunner,
  state: KeepalivedControl["state"],
  unit = "keepalived.service",
): KeepalivedControl {
  const systemctl = async (verb: string, allowFail = false): Promise<boolean> => {
    const r = await runner(["systemctl", verb, unit], { timeoutMs: 90_000 });
    if (r.exitCode !== 0 && !allowFail)
      throw new Error(
        `systemctl ${verb} ${unit}: exit ${r.exitCode ?? (r.timedOut ? "timeout" : "none")}: ${r.output.trim().slice(-512)}`,
      );
    return r.exitCode === 0;
  };
  return {
    active: () => systemctl("is-active", true),
    state,
    stop: async () => {
      await systemctl("stop");
    },
    start: async () => {
      await systemctl("start");
    },
  };
}
