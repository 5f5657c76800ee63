/**
 * `edgepair lab status`'s Service frontends (lab/service-status.ts) from real `nft -j` output. The captures in
 * test/fixtures/service-status/ were made by loading a rendered services.nft into a throwaway network namespace:
 *   ip netns add X; ip netns exec X nft -f FILE; ip netns exec X nft -j list table ip edgepair_services; ip netns del X
 * - golden-lb1.json: test/golden/services-lb1/etc/edgepair/services.nft (extra services db and mqtt; syslog has no
 *   backend, so it is not in the table); golden-lb1-mqtt-down.json: the same after the health overlay the agent writes
 *   when mqtt's 192.168.100.21 fails (agent/service-lb/health.ts: its slot points at 192.168.100.20).
 * - services.json: services.nft (renderServiceLb of the services variant with three Services of type LoadBalancer
 *   on three nodes: apps/dns TCP+UDP 53 on a public pool address, db/pg TCP 5432 on a private one from one source
 *   range); services-down.json: apps/dns TCP with 192.168.100.21 down, db/pg with .20 and .22 down.
 * nftables 1.0.6; handles differ between captures and are not read.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  formatServiceFrontends,
  frontendName,
  parseServiceTable,
  renderedSlots,
  type ServiceFrontendStatus,
} from "../lab/service-status";

const fixture = (name: string) => readFileSync(join(__dirname, "fixtures/service-status", name), "utf8");
const GOLDEN_NFT = readFileSync(join(__dirname, "golden/services-lb1/etc/edgepair/services.nft"), "utf8");

/** `TCP 1.2.3.4:5 <- from: a:p, b:p DOWN` per frontend */
const brief = (fs: ServiceFrontendStatus[]) =>
  fs.map(
    (f) =>
      `${f.protocol} ${f.address}:${f.port} ${f.chain} from ${f.sourceRanges.join(",") || "anywhere"}: ${f.backends
        .map((b) => `${b.address}:${b.port}${b.up ? "" : " DOWN"}`)
        .join(", ")}${f.slotsPointedAway ? ` +${f.slotsPointedAway} away` : ""}`,
  );

describe("parseServiceTable: the live table read against the rendered file it was applied from", () => {
  test("the golden extra services: one line per forwarded frontend, sorted, with source ranges and every backend up", () => {
    expect(brief(parseServiceTable(fixture("golden-lb1.json"), GOLDEN_NFT))).toEqual([
      "TCP 192.168.100.100:5432 extra/db from anywhere: 192.168.100.20:30432",
      "TCP 198.51.100.130:8883 extra/mqtt from 10.0.0.0/8,203.0.113.0/24: 192.168.100.20:30883, 192.168.100.21:30883",
    ]);
  });

  test("a backend whose slot health pointed at another one is listed DOWN, the others stay up", () => {
    expect(brief(parseServiceTable(fixture("golden-lb1-mqtt-down.json"), GOLDEN_NFT))).toEqual([
      "TCP 192.168.100.100:5432 extra/db from anywhere: 192.168.100.20:30432",
      "TCP 198.51.100.130:8883 extra/mqtt from 10.0.0.0/8,203.0.113.0/24: 192.168.100.20:30883, 192.168.100.21:30883 DOWN",
    ]);
  });

  test("Services of type LoadBalancer: TCP and UDP on one address, one source range (no set), two of three down", () => {
    const rendered = fixture("services.nft");
    const up = parseServiceTable(fixture("services.json"), rendered);
    expect(brief(up)).toEqual([
      "TCP 192.168.100.100:5432 extra/db from anywhere: 192.168.100.20:30432",
      "TCP 192.168.100.200:5432 svc/db/pg/tcp/5432 from 10.0.0.0/8: 192.168.100.20:30432, 192.168.100.21:30432, 192.168.100.22:30432",
      "UDP 198.51.100.80:514 extra/syslog from anywhere: 192.168.100.20:30514, 192.168.100.21:30514",
      "TCP 198.51.100.128:53 svc/apps/dns/tcp/53 from anywhere: 192.168.100.20:31053, 192.168.100.21:31053, 192.168.100.22:31053",
      "UDP 198.51.100.128:53 svc/apps/dns/udp/53 from anywhere: 192.168.100.20:31053, 192.168.100.21:31053, 192.168.100.22:31053",
      "TCP 198.51.100.130:8883 extra/mqtt from 10.0.0.0/8,203.0.113.0/24: 192.168.100.20:30883, 192.168.100.21:30883",
    ]);
    const down = parseServiceTable(fixture("services-down.json"), rendered);
    const states = (chain: string) =>
      down.find((f) => f.chain === chain)!.backends.map((b) => `${b.address.split(".")[3]}:${b.up ? "up" : "down"}`);
    expect(states("svc/apps/dns/tcp/53")).toEqual(["20:up", "21:down", "22:up"]);
    // the UDP frontend of the same Service has no probe (UDP, ETP Cluster): untouched
    expect(states("svc/apps/dns/udp/53")).toEqual(["20:up", "21:up", "22:up"]);
    expect(states("svc/db/pg/tcp/5432")).toEqual(["20:down", "21:up", "22:down"]);
    expect(down.every((f) => f.slotsPointedAway === 0)).toBe(true);
  });

  test("without the rendered file (or a map it does not hold) the live targets are listed and the slots pointed away counted", () => {
    expect(brief(parseServiceTable(fixture("golden-lb1-mqtt-down.json")))).toEqual([
      "TCP 192.168.100.100:5432 extra/db from anywhere: 192.168.100.20:30432",
      "TCP 198.51.100.130:8883 extra/mqtt from 10.0.0.0/8,203.0.113.0/24: 192.168.100.20:30883 +1 away",
    ]);
    // the golden file holds db and mqtt only: the Services' maps fall back, the extra services' are still named
    const mixed = parseServiceTable(fixture("services-down.json"), GOLDEN_NFT);
    expect(brief(mixed.filter((f) => f.chain.startsWith("svc/")))).toEqual([
      "TCP 192.168.100.200:5432 svc/db/pg/tcp/5432 from 10.0.0.0/8: 192.168.100.21:30432 +2 away",
      "TCP 198.51.100.128:53 svc/apps/dns/tcp/53 from anywhere: 192.168.100.20:31053, 192.168.100.22:31053 +1 away",
      "UDP 198.51.100.128:53 svc/apps/dns/udp/53 from anywhere: 192.168.100.20:31053, 192.168.100.21:31053, 192.168.100.22:31053",
    ]);
  });

  test("a rendered file that no longer matches the live map (an apply in between) is not trusted for that map", () => {
    // mqtt rendered with three slots, the live map has two
    const stale = GOLDEN_NFT.replace(
      "elements = { 0 : 192.168.100.20 . 30883, 1 : 192.168.100.21 . 30883 }",
      "elements = { 0 : 192.168.100.20 . 30883, 1 : 192.168.100.21 . 30883, 2 : 192.168.100.22 . 30883 }",
    );
    const mqtt = parseServiceTable(fixture("golden-lb1-mqtt-down.json"), stale).find((f) => f.chain === "extra/mqtt")!;
    expect(mqtt.backends.map((b) => b.address)).toEqual(["192.168.100.20"]);
    expect(mqtt.slotsPointedAway).toBe(1);
  });

  test("renderedSlots reads the maps as renderServiceLb writes them", () => {
    const slots = renderedSlots(GOLDEN_NFT);
    expect([...slots.keys()]).toEqual(["extra/db/backends", "extra/mqtt/backends"]);
    expect(slots.get("extra/mqtt/backends")).toEqual([
      { address: "192.168.100.20", port: 30883 },
      { address: "192.168.100.21", port: 30883 },
    ]);
  });

  test("an empty table lists nothing; output that is not nft's JSON throws (status reports it per LB)", () => {
    expect(parseServiceTable('{"nftables": [{"metainfo": {"version": "1.0.6"}}]}')).toEqual([]);
    expect(() => parseServiceTable("Error: No such file or directory")).toThrow();
  });

  test("frontendName: extra services by name, Services by namespace/name, anything else by its chain", () => {
    expect(frontendName("extra/db")).toBe("extra db");
    expect(frontendName("svc/apps/dns/udp/53")).toBe("apps/dns");
    expect(frontendName("prerouting")).toBe("prerouting");
  });
});

describe("formatServiceFrontends", () => {
  test("one row per frontend; rows both LBs agree on once, a backend down on one LB only on a row of its own", () => {
    const rendered = fixture("services.nft");
    const text = formatServiceFrontends([
      { key: "lb1", frontends: parseServiceTable(fixture("services-down.json"), rendered) },
      { key: "lb2", frontends: parseServiceTable(fixture("services.json"), rendered) },
    ]);
    expect(text).toBe(
      [
        "Service frontend          name          from                        NodePort  backends (DOWN: failed health check)                      LBs",
        "------------------------  ------------  --------------------------  --------  --------------------------------------------------------  --------",
        "TCP 192.168.100.100:5432  extra db      anywhere                    30432     192.168.100.20                                            lb1, lb2",
        "TCP 192.168.100.200:5432  db/pg         10.0.0.0/8                  30432     192.168.100.20 DOWN, 192.168.100.21, 192.168.100.22 DOWN  lb1",
        "TCP 192.168.100.200:5432  db/pg         10.0.0.0/8                  30432     192.168.100.20, 192.168.100.21, 192.168.100.22            lb2",
        "UDP 198.51.100.80:514     extra syslog  anywhere                    30514     192.168.100.20, 192.168.100.21                            lb1, lb2",
        "TCP 198.51.100.128:53     apps/dns      anywhere                    31053     192.168.100.20, 192.168.100.21 DOWN, 192.168.100.22       lb1",
        "TCP 198.51.100.128:53     apps/dns      anywhere                    31053     192.168.100.20, 192.168.100.21, 192.168.100.22            lb2",
        "UDP 198.51.100.128:53     apps/dns      anywhere                    31053     192.168.100.20, 192.168.100.21, 192.168.100.22            lb1, lb2",
        "TCP 198.51.100.130:8883   extra mqtt    10.0.0.0/8, 203.0.113.0/24  30883     192.168.100.20, 192.168.100.21                            lb1, lb2",
        "",
      ].join("\n"),
    );
  });

  test("a frontend one LB does not forward shows which LB does; the fallback says what it cannot name", () => {
    const text = formatServiceFrontends([
      { key: "lb1", frontends: parseServiceTable(fixture("golden-lb1-mqtt-down.json")) },
      { key: "lb2", frontends: [] },
    ]);
    expect(text).toContain("30883     192.168.100.20 +1 slot(s) pointed away (down, unnamed)  lb1");
    expect(text.split("\n").filter((l) => l.endsWith("lb1"))).toHaveLength(2);
  });

  test("backends on different ports (not rendered so, but the table allows it): no NodePort column, address:port each", () => {
    const f: ServiceFrontendStatus = {
      chain: "extra/odd",
      protocol: "TCP",
      address: "192.168.100.100",
      port: 9000,
      sourceRanges: [],
      backends: [
        { address: "192.168.100.20", port: 30001, up: true },
        { address: "192.168.100.21", port: 30002, up: false },
      ],
      slotsPointedAway: 0,
    };
    expect(formatServiceFrontends([{ key: "lb1", frontends: [f] }]).split("\n")[2]).toBe(
      "TCP 192.168.100.100:9000  extra odd  anywhere  -         192.168.100.20:30001, 192.168.100.21:30002 DOWN  lb1",
    );
  });

  test("nothing forwarded on either LB: one line saying so", () => {
    expect(
      formatServiceFrontends([
        { key: "lb1", frontends: [] },
        { key: "lb2", frontends: [] },
      ]),
    ).toBe("Service frontends: none forwarded (no extraServices, no Service of type LoadBalancer)\n");
  });
});
