/**
 * The service table (render/services.ts) against what the renderers produce: every rendered file belongs to exactly
 * one service, the one its reload names, so the agent's validation, rollout and bootstrap read the right entry.
 */
import { renderAll } from "../render";
import { BOOTSTRAP_UNITS, SERVICE_NAMES, SERVICES, serviceOfPath } from "../render/services";
import { variantsByHost } from "./fixtures/variants";

describe("service table", () => {
  test.each(variantsByHost.map((v) => [v.label, v] as const))(
    "%s: each rendered file is owned by one service, the one its reload names",
    (_label, v) => {
      for (const f of renderAll({ spec: v.spec, host: v.host, backends: v.backends })) {
        const owners = SERVICE_NAMES.filter((s) => SERVICES[s].owns(f.path));
        expect([f.path, owners]).toEqual([f.path, [f.reload.service]]);
        expect(serviceOfPath(f.path)).toBe(f.reload.service);
      }
    },
  );

  test("bootstrap starts firewalld, haproxy, conntrackd, keepalived, in that order; risky and quiet flags as the agent needs", () => {
    expect(BOOTSTRAP_UNITS.map((u) => u.unit)).toEqual([
      "firewalld.service",
      "haproxy.service",
      "conntrackd.service",
      "keepalived.service",
    ]);
    expect(SERVICE_NAMES.filter((s) => SERVICES[s].risky).sort()).toEqual([
      "firewalld",
      "haproxy",
      "keepalived",
      "networkmanager",
      "nftables",
      "sysctl",
    ]);
    expect(SERVICE_NAMES.filter((s) => SERVICES[s].reloadStallsTraffic)).toEqual(["firewalld"]);
  });

  test("counter-case: a path no service reads belongs to none", () => {
    for (const p of [
      "/etc/edgepair/host.yaml",
      "/etc/haproxy/errors/503.http",
      "/etc/keepalived/notify.sh",
      "/tmp/x.nft",
    ])
      expect([p, serviceOfPath(p)]).toEqual([p, undefined]);
  });
});
