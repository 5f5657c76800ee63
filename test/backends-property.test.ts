/**
 * The backend selection's rules (agent/kube/backends.ts) as properties over generated clusters (fast-check): any
 * Nodes, with any names, labels, readiness, cordon and addresses (inside and outside the cluster network, the pair's
 * own, IPv6, many per Node, shared between Nodes). Bounded: 300 clusters per property, at most 40 Nodes each.
 */
import fc from "fast-check";
import { selectBackends, type NodeView } from "../agent/kube/backends";
import { resolveSpec } from "../spec/resolve";
import { devSpecRaw } from "./fixtures/variants";

const CP = "node-role.kubernetes.io/control-plane";
const WORKER = "node-role.kubernetes.io/worker";
const EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers";

const spec = resolveSpec(devSpecRaw());
const own = new Set([
  spec.network.gateway,
  ...spec.network.lbAddresses,
  ...spec.derived.privateVips.map((v) => v.address),
]);
const inCidr = (a: string) => /^192\.168\.100\.\d+$/.test(a);

const address = fc.oneof(
  fc.integer({ min: 1, max: 254 }).map((i) => `192.168.100.${i}`), // inside, the spec's statics and the pair's own included
  fc.integer({ min: 1, max: 254 }).map((i) => `10.0.0.${i}`), // outside the cluster network
  fc.constantFrom("fd00::1", "2001:db8::5"),
);
const node: fc.Arbitrary<NodeView> = fc.record({
  name: fc.oneof(fc.string({ minLength: 1, maxLength: 30 }), fc.constantFrom("cp-0", "192.168.100.11", "w-1")),
  labels: fc.subarray([CP, WORKER, EXCLUDE]).map((ks) => Object.fromEntries(ks.map((k) => [k, ""]))),
  ready: fc.boolean(),
  unschedulable: fc.boolean(),
  internalIPs: fc.array(address, { maxLength: 4 }),
});
// Node names are unique in a cluster
const cluster = fc.uniqueArray(node, { maxLength: 40, selector: (n) => n.name });
const RUNS = { numRuns: 300 };

describe("backend selection, properties over generated clusters", () => {
  test("every static address is a server of its pool, whatever the Nodes say", () => {
    fc.assert(
      fc.property(cluster, (nodes) => {
        const api = selectBackends(spec, nodes).pools.api.servers;
        return spec.apiBackend.addresses.every((a) => api.some((s) => s.address === a && s.from === "spec"));
      }),
      RUNS,
    );
  });

  test("one server per address; every server inside network.cidr and never one of the pair's own addresses", () => {
    fc.assert(
      fc.property(cluster, (nodes) => {
        const r = selectBackends(spec, nodes);
        for (const pool of [r.pools.api, r.pools.ingress!]) {
          const addresses = pool.servers.map((s) => s.address);
          if (new Set(addresses).size !== addresses.length) return false;
          if (!addresses.every((a) => inCidr(a) && !own.has(a))) return false;
        }
        return true;
      }),
      RUNS,
    );
  });

  test("every control-plane Node with an address inside the network is an API server, Ready or not, cordoned or not", () => {
    fc.assert(
      fc.property(cluster, (nodes) => {
        const api = selectBackends(spec, nodes).pools.api;
        return nodes
          .filter((n) => CP in n.labels && n.internalIPs.some((a) => inCidr(a) && !own.has(a)))
          .every(
            (n) =>
              api.servers.some((s) => s.node === n.name) ||
              api.leftOut.some((l) => l.node === n.name && l.reason.startsWith("same InternalIP")),
          );
      }),
      RUNS,
    );
  });

  test("a Node more never takes an API server away (odd names, many addresses, any state)", () => {
    fc.assert(
      fc.property(cluster, node, (nodes, extra) => {
        fc.pre(!nodes.some((n) => n.name === extra.name));
        const before = selectBackends(spec, nodes).pools.api.servers.map((s) => s.address);
        const after = new Set(selectBackends(spec, [...nodes, extra]).pools.api.servers.map((s) => s.address));
        return before.every((a) => after.has(a));
      }),
      RUNS,
    );
  });

  test("the order Nodes arrive in changes nothing", () => {
    fc.assert(
      fc.property(
        cluster.chain((nodes) =>
          fc.tuple(
            fc.constant(nodes),
            fc.shuffledSubarray(nodes, { minLength: nodes.length, maxLength: nodes.length }),
          ),
        ),
        ([nodes, shuffled]) => {
          expect(selectBackends(spec, shuffled)).toEqual(selectBackends(spec, nodes));
        },
      ),
      RUNS,
    );
  });

  test("ingress: no cordoned or excluded Node is a server; a NotReady one only while no matching Node is Ready", () => {
    fc.assert(
      fc.property(cluster, (nodes) => {
        const ingress = selectBackends(spec, nodes).pools.ingress!;
        const byName = new Map(nodes.map((n) => [n.name, n]));
        const anyReady = nodes.some(
          (n) =>
            WORKER in n.labels &&
            n.ready &&
            !n.unschedulable &&
            !(EXCLUDE in n.labels) &&
            n.internalIPs.some((a) => inCidr(a) && !own.has(a)),
        );
        return ingress.servers.every((s) => {
          const n = byName.get(s.node ?? "");
          return n !== undefined && !n.unschedulable && !(EXCLUDE in n.labels) && (n.ready || !anyReady);
        });
      }),
      RUNS,
    );
  });
});
