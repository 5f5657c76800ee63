/**
 * `edgepair status`: a deployed pair from a terminal. Reads the LoadBalancer with a kubeconfig, or with the API's
 * address, CA and a token file (the agent's own token can: its Role reads its LoadBalancer), and prints
 * k8s/pair-status.ts's view; `-o json` prints the view itself. Exit 0 only when the pair is Redundant, 1 otherwise
 * (a script can gate on it), 2 for bad input. The token is sent in a header and never printed.
 */
import { readFileSync } from "node:fs";
import { request } from "node:https";
import type { Command } from "commander";
import { k8s, type K8s } from "../agent/kube/client";
import { DEFAULT_NAMESPACE, GROUP, PLURAL, VERSION } from "../k8s/names";
import { formatPairStatus, pairStatusView } from "../k8s/pair-status";
import { BadInput } from "./exit";

export class NotRedundant extends Error {}

interface StatusOptions {
  kubeconfig?: string;
  server?: string;
  ca?: string;
  tokenFile?: string;
  tlsServerName?: string;
  namespace: string;
  name: string;
  output?: string;
}

function kubeConfigOf(o: StatusOptions): K8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (o.kubeconfig) {
    kc.loadFromFile(o.kubeconfig);
    return kc;
  }
  const missing = [
    ...(o.server ? [] : ["--server: is required without --kubeconfig"]),
    ...(o.ca ? [] : ["--ca: is required without --kubeconfig"]),
    ...(o.tokenFile ? [] : ["--token-file: is required without --kubeconfig"]),
  ];
  if (missing.length > 0) throw new BadInput(missing);
  kc.loadFromOptions({
    clusters: [
      {
        name: "pair",
        server: o.server!,
        caData: Buffer.from(readFileSync(o.ca!)).toString("base64"),
        ...(o.tlsServerName ? { tlsServerName: o.tlsServerName } : {}),
      },
    ],
    users: [{ name: "reader", token: readFileSync(o.tokenFile!, "utf8").trim() }],
    contexts: [{ name: "pair", cluster: "pair", user: "reader" }],
    currentContext: "pair",
  });
  return kc;
}

async function getJson(kc: K8s.KubeConfig, path: string): Promise<unknown> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new BadInput(["kubeconfig: has no current cluster"]);
  const opts: import("node:https").RequestOptions = { method: "GET", headers: { Accept: "application/json" } };
  await kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = request(new URL(server + path), opts, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if ((res.statusCode ?? 0) >= 300)
          reject(new Error(`GET ${path}: ${res.statusCode ?? "?"} ${text.slice(0, 300)}`));
        else resolve(JSON.parse(text));
      });
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`GET ${path}: no answer in 15 s`)));
    req.on("error", reject);
    req.end();
  });
}

export function registerStatus(p: Command, out: (s: string) => void): void {
  p.command("status")
    .description("a deployed pair: both LBs, VRRP, image, heartbeat, conditions, pools; exit 0 only when Redundant")
    .option("--kubeconfig <file>", "a kubeconfig that may read the LoadBalancer")
    .option("--server <url>", "the API server (without --kubeconfig)")
    .option("--ca <file>", "the API server's CA certificate (PEM)")
    .option("--token-file <file>", "a bearer token, e.g. the agent's (never printed)")
    .option("--tls-server-name <name>", "the API's TLS name when --server is an address")
    .option("-n, --namespace <ns>", "the LoadBalancer's namespace", DEFAULT_NAMESPACE)
    .requiredOption("--name <name>", "the LoadBalancer (the clusterName of the spec)")
    .option("-o, --output <format>", "text (default) or json")
    .action(async (o: StatusOptions) => {
      if (o.output !== undefined && o.output !== "text" && o.output !== "json")
        throw new BadInput([`--output: must be text or json, not ${o.output}`]);
      const kc = kubeConfigOf(o);
      const path = `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(o.namespace)}/${PLURAL}/${encodeURIComponent(o.name)}`;
      const view = pairStatusView(await getJson(kc, path), Date.now());
      out(o.output === "json" ? `${JSON.stringify(view, null, 2)}\n` : formatPairStatus(view));
      if (view.redundant.status !== "True") throw new NotRedundant(`not Redundant: ${view.redundant.reason}`);
    });
}
