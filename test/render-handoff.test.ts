/**
 * The connection handoff table (render/handoff.ts), its routing rule in the private keyfile and its switch in the
 * notify script. The behaviour (a connection open on the old LB survives a planned move) is in test/lab.test.ts.
 */
import {
  HANDOFF_NFT_PATH,
  HANDOFF_TABLE,
  handoffFrontends,
  renderHandoff,
  sharedLocalAddresses,
} from "../render/handoff";
import { renderNetworkManager } from "../render/networkmanager";
import { renderNotifyScript } from "../render/notify";
import { renderSysctl } from "../render/sysctl";
import { withNetns } from "./checkers/netns";
import { applyNft, checkNft } from "./checkers/nft";
import { checkNmKeyfile } from "./checkers/nmcli";
import { run } from "./checkers/run";
import { devBackends, devResolved, primaryHost, secondaryHost } from "./fixtures/resolved";
import { variantsByHost } from "./fixtures/variants";

const content = (files: { path: string; content: string }[], path: string) =>
  files.find((f) => f.path === path)?.content ?? "";

describe.each(variantsByHost)("$label", ({ spec, host, backends }) => {
  const nft = content(renderHandoff({ spec, host, backends }), HANDOFF_NFT_PATH);

  test("nft -c accepts the table; every IPv4 frontend is in the set, nothing else", () => {
    const r = checkNft(nft);
    if (!r.ok) throw new Error(r.output);
    const frontends = handoffFrontends(spec);
    for (const f of frontends) expect(nft).toContain(f);
    // the LB's own listeners (stats, monitor) are never handed off, and no IPv6 address can be in an ipv4 set
    expect(nft).not.toContain(`. ${spec.metrics.port}`);
    expect(frontends.some((f) => f.includes(":"))).toBe(false);
    if (spec.derived.frontends.api.some((v) => v.family === 4))
      expect(frontends.some((f) => f.endsWith(". 6443"))).toBe(true);
  });

  test("hands off to the peer's private address over the private NIC, never a SYN", () => {
    const [primary, secondary] = spec.network.lbAddresses;
    const peer = host.role === "primary" ? secondary : primary;
    expect(nft).toContain(`dup to ${peer} device "${host.privateInterface.name}" drop`);
    expect(nft).toMatch(/iifname @handoff_on ct state invalid tcp flags & syn == 0 /);
  });

  test("every frontend VIP is local on both LBs (the dummy link's keyfile), ARP only on the holder's NIC; nmcli accepts it", () => {
    const keyfile = content(
      renderNetworkManager({ spec, host, backends }),
      "/etc/NetworkManager/system-connections/edgepair-fip.nmconnection",
    );
    const r = checkNmKeyfile(keyfile);
    if (!r.ok) throw new Error(r.output);
    const { api, machineConfig, ingress } = spec.derived.frontends;
    for (const v of [...api, ...machineConfig, ...ingress])
      expect(keyfile).toContain(`=${v.address}/${v.family === 4 ? 32 : 128}`);
    expect(sharedLocalAddresses(spec).map((v) => v.address)).not.toContain(spec.network.gateway);
    if (spec.platform.type === "openstack" && spec.virtualAddresses.nat)
      expect(keyfile).not.toContain(`=${spec.virtualAddresses.nat.address}/`);
    const sysctl = content(renderSysctl({ spec, host, backends }), "/etc/sysctl.d/50-edgepair.conf");
    expect(sysctl).toContain(`${host.privateInterface.name}.rp_filter = 2`);
    expect(sysctl).toContain(`${host.privateInterface.name}.arp_ignore = 1`);
    expect(sysctl).toContain(`${host.publicInterface.name}.arp_ignore = 1`);
  });
});

test("the notify script turns the handoff on first on MASTER and off in every other state", () => {
  const script = content(
    renderNotifyScript({ spec: devResolved, host: primaryHost, backends: devBackends }),
    "/etc/edgepair/keepalived-notify.sh",
  );
  const cases = [...script.matchAll(/^(MASTER|BACKUP|FAULT|STOP)\)\n((?:\t.*\n)+?)\t;;/gm)];
  expect(cases.map((c) => c[1])).toEqual(["MASTER", "BACKUP", "FAULT", "STOP"]);
  for (const [, state, body] of cases) {
    if (state === "MASTER")
      expect((body ?? "").split("\n")[0]).toBe(
        `\tstep nft add element ip ${HANDOFF_TABLE} handoff_on '{ ${primaryHost.publicInterface.name}, ${primaryHost.privateInterface.name} }'`,
      );
    else expect(body).toContain(`step nft flush set ip ${HANDOFF_TABLE} handoff_on`);
  }
});

test("a reload keeps the VRRP state in handoff_on and replaces frontends and rules", () => {
  const first = content(
    renderHandoff({ spec: devResolved, host: secondaryHost, backends: devBackends }),
    HANDOFF_NFT_PATH,
  );
  const fewer = first.replace(/, 198\.51\.100\.80 \. 443, 198\.51\.100\.80 \. 80/, "");
  expect(fewer).not.toBe(first);
  withNetns([{ name: secondaryHost.privateInterface.name }, { name: secondaryHost.publicInterface.name }], (ns) => {
    const nft = (...args: string[]) => run("ip", ["netns", "exec", ns, "nft", ...args]);
    expect(applyNft(ns, first).ok).toBe(true);
    expect(nft("add", "element", "ip", HANDOFF_TABLE, "handoff_on", "{ enp1s0, enp2s0 }").status).toBe(0);
    for (const c of [first, fewer]) {
      const r = applyNft(ns, c);
      if (!r.ok) throw new Error(r.output);
    }
    const listed = nft("list", "table", "ip", HANDOFF_TABLE).output;
    expect(listed).toMatch(/handoff_on[^}]*"enp1s0"/s);
    expect(listed).not.toContain("198.51.100.80");
    expect(listed.match(/dup to/g)).toHaveLength(1);
    // the handed-off packets are counted (the load bench and on-call read it), and a reload does not add a rule
    expect(listed).toMatch(/counter packets \d+ bytes \d+ dup to/);
  });
});

test("counter-case: nft rejects a handoff to a device that does not exist and a broken set element", () => {
  const nft = content(renderHandoff({ spec: devResolved, host: primaryHost, backends: devBackends }), HANDOFF_NFT_PATH);
  expect(checkNft(nft).ok).toBe(true);
  const noDevice = withNetns([], (ns) => applyNft(ns, nft, { checkOnly: true }));
  expect(noDevice.ok).toBe(false);
  expect(checkNft(nft.replace("198.51.100.100 . 6443", "198.51.100.300 . 6443")).ok).toBe(false);
});
