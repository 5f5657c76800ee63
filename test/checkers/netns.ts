/**
 * Throwaway network namespaces for checkers that need named interfaces (keepalived -t, conntrackd, sysctl).
 * This kernel has no dummy links, so each wanted interface is one end of a veth pair; the peer end stays in the
 * same namespace. Every namespace is deleted in `finally`, also when the body throws.
 */
import { must, run } from "./run";

export interface WantedInterface {
  name: string;
  addresses?: string[]; // with prefix, e.g. 192.168.100.2/24
}

let counter = 0;

/** Creates the namespace with its interfaces; returns its name. `deleteNetns` undoes it. */
export function createNetns(interfaces: WantedInterface[]): string {
  const ns = `ep-chk-${process.pid}-${++counter}`;
  must("ip", ["netns", "add", ns]);
  try {
    must("ip", ["-n", ns, "link", "set", "lo", "up"]);
    interfaces.forEach((itf, i) => {
      const peer = `ep-peer${i}`;
      must("ip", ["-n", ns, "link", "add", itf.name, "type", "veth", "peer", "name", peer]);
      for (const a of itf.addresses ?? []) must("ip", ["-n", ns, "addr", "add", a, "dev", itf.name]);
      must("ip", ["-n", ns, "link", "set", itf.name, "up"]);
      must("ip", ["-n", ns, "link", "set", peer, "up"]);
    });
    return ns;
  } catch (e) {
    deleteNetns(ns);
    throw e;
  }
}

/** Kills whatever still runs in the namespace, then deletes it. */
export function deleteNetns(ns: string): void {
  run("ip", ["netns", "pids", ns])
    .stdout.split(/\s+/)
    .filter(Boolean)
    .forEach((pid) => run("kill", ["-9", pid]));
  run("ip", ["netns", "del", ns]);
}

export function withNetns<T>(interfaces: WantedInterface[], body: (ns: string) => T): T {
  const ns = createNetns(interfaces);
  try {
    return body(ns);
  } finally {
    deleteNetns(ns);
  }
}

export async function withNetnsAsync<T>(interfaces: WantedInterface[], body: (ns: string) => Promise<T>): Promise<T> {
  const ns = createNetns(interfaces);
  try {
    return await body(ns);
  } finally {
    deleteNetns(ns);
  }
}
