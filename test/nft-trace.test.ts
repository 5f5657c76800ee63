/**
 * The lab's reading of `nft monitor trace` (lab/nft-trace.ts). The lines are nft 1.0's format, as the lab tests
 * read it from real firewalld tables; a CI run once took a packet cut off in firewalld's prerouting chains (its
 * last line "policy accept") for a verdict.
 */
import { traceVerdicts } from "../lab/nft-trace";

const id = (n: number) => `trace id ${(0x1a2b3c00 + n).toString(16)}`;
const reject = "rule reject with icmpx admin-prohibited (verdict drop)";

/** A VRRP advert from a stranger: through firewalld's prerouting chains to filter_INPUT's final reject. */
function rejected(n: number): string[] {
  return [
    `${id(n)} ip edgepair_lab_trace pre packet: iif "eth1" ip saddr 10.9.0.66 ip daddr 10.9.0.2 ip protocol vrrp`,
    `${id(n)} ip edgepair_lab_trace pre rule ip saddr 10.9.0.66 meta nftrace set 1 (verdict continue)`,
    `${id(n)} ip edgepair_lab_trace pre policy accept `,
    `${id(n)} inet firewalld mangle_PREROUTING rule jump mangle_PREROUTING_ZONES (verdict jump mangle_PREROUTING_ZONES)`,
    `${id(n)} inet firewalld mangle_PREROUTING_ZONES rule iifname "eth1" goto mangle_PRE_public (verdict goto mangle_PRE_public)`,
    `${id(n)} inet firewalld mangle_PRE_public rule jump mangle_PRE_public_pre (verdict jump mangle_PRE_public_pre)`,
    `${id(n)} inet firewalld mangle_PREROUTING policy accept `,
    `${id(n)} inet firewalld nat_PREROUTING policy accept `,
    `${id(n)} inet firewalld filter_INPUT rule jump filter_INPUT_ZONES (verdict jump filter_INPUT_ZONES)`,
    `${id(n)} inet firewalld filter_INPUT_ZONES rule iifname "eth1" goto filter_IN_public (verdict goto filter_IN_public)`,
    `${id(n)} inet firewalld filter_IN_public rule jump filter_IN_public_allow (verdict jump filter_IN_public_allow)`,
    `${id(n)} inet firewalld filter_INPUT ${reject}`,
  ];
}

describe("traceVerdicts", () => {
  test("each packet's final verdict, once per packet", () => {
    expect(traceVerdicts([...rejected(1), ...rejected(2)].join("\n"))).toEqual([reject, reject]);
  });

  test("a packet the window cut off in any prerouting chain, or on a jump, goto or return, is left out", () => {
    const full = rejected(3);
    for (const cut of [4, 5, 6, 7, 8, 9, 10, 11]) {
      const out = traceVerdicts([...rejected(1), ...full.slice(0, cut)].join("\n"));
      expect([cut, out]).toEqual([cut, [reject]]);
    }
  });

  test("counter-case: decided verdicts are kept whatever they are (an accept in the input filter counts)", () => {
    const accepted = `${id(4)} inet firewalld filter_IN_public_allow rule ip protocol vrrp accept (verdict accept)`;
    const policy = `${id(5)} inet firewalld filter_OUTPUT policy accept `;
    expect(traceVerdicts([accepted, policy].join("\n"))).toEqual([
      "rule ip protocol vrrp accept (verdict accept)",
      "policy accept ",
    ]);
  });

  test("the guard table counts for its drops only; its accept policy and other tables are not firewalld's", () => {
    const drop = `${id(6)} inet edgepair_guard input rule ip saddr 10.8.0.2 iifname != "sync0" drop (verdict drop)`;
    const pass = `${id(7)} inet edgepair_guard output policy accept `;
    const other = `${id(8)} ip edgepair_lab_trace pre policy accept `;
    expect(traceVerdicts([drop, pass, other].join("\n"))).toEqual([
      'rule ip saddr 10.8.0.2 iifname != "sync0" drop (verdict drop)',
    ]);
  });
});
