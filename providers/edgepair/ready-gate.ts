/**
 * ReadyGate: holds the rest of an update until an LB answers again. Pulumi must never take both LBs down at once;
 * ordering the second VM after the first is not enough when the first comes back slowly (a replacement boots,
 * runs cloud-init and the agent's bootstrap). The gate depends on the first VM and re-runs whenever that VM is
 * created or replaced (`after` changes); the second VM depends on the gate. Ready here means HAProxy serves: its
 * monitor URI on the LB's private address answers 200 (the listener admits the cluster network, where the libvirt
 * host has its address; on a cloud, the machine running Pulumi must reach the cluster network, as for
 * TokenDelivery).
 */
import * as pulumi from "@pulumi/pulumi";

export interface ReadyGateArgs {
  /** e.g. http://192.168.100.2:8404/healthz */
  url: pulumi.Input<string>;
  /** the id of what must be back (the VM): a new id runs the gate again */
  after: pulumi.Input<string>;
  /** Default 600. */
  timeoutSeconds?: pulumi.Input<number>;
  /** false: record only (a lab whose VMs boot nothing). Default true. */
  enabled?: pulumi.Input<boolean>;
}

interface GateInputs {
  url: string;
  after: string;
  timeoutSeconds?: number;
  enabled?: boolean;
}

const POLL_MS = 1000;
const REQUEST_TIMEOUT_MS = 3000;

/** Polls `url` until it answers 200, or throws naming the URL, the time waited and the last answer. */
export async function waitReady(url: string, timeoutMs: number, pollMs = POLL_MS): Promise<number> {
  const start = Date.now();
  let last = "no answer yet";
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      await res.arrayBuffer();
      if (res.status === 200) return Date.now() - start;
      last = `HTTP ${res.status}`;
    } catch (e) {
      // fetch reports the reason (ECONNREFUSED, a timeout) in `cause`
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      last = cause?.code ?? cause?.message ?? (e as { message?: string }).message ?? String(e);
    }
    if (Date.now() - start >= timeoutMs) {
      throw new Error(
        `ready gate: ${url} did not answer 200 within ${Math.round(timeoutMs / 1000)} s (last: ${last}); the next LB is not touched`,
      );
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

async function gate(inputs: GateInputs): Promise<Record<string, unknown>> {
  const waitedMs = inputs.enabled === false ? 0 : await waitReady(inputs.url, (inputs.timeoutSeconds ?? 600) * 1000);
  return { ...inputs, waitedMs };
}

export const readyGateProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: GateInputs) {
    return { id: `gate-${inputs.after}`, outs: await gate(inputs) };
  },
  async diff(_id: string, olds: GateInputs, news: GateInputs) {
    const changes =
      olds.after !== news.after ||
      olds.url !== news.url ||
      olds.enabled !== news.enabled ||
      olds.timeoutSeconds !== news.timeoutSeconds;
    return { changes, replaces: [], deleteBeforeReplace: false };
  },
  async update(_id: string, _olds: GateInputs, news: GateInputs) {
    return { outs: await gate(news) };
  },
};

export class ReadyGate extends pulumi.dynamic.Resource {
  declare public readonly waitedMs: pulumi.Output<number>;

  constructor(name: string, args: ReadyGateArgs, opts?: pulumi.CustomResourceOptions) {
    super(readyGateProvider, name, { ...args, waitedMs: undefined }, opts, "edgepair", "ReadyGate");
  }
}
