/**
 * The verdicts in `nft monitor trace` output: per traced packet, the last rule or policy of firewalld's that decided
 * it, or the guard table's rule that dropped it (render/guard.ts). Pure, so the parsing is tested on its own
 * (test/nft-trace.test.ts) and the lab only collects the text.
 */

/**
 * Whether a packet's last line leaves it undecided: the monitor's window was cut while the packet was still on its
 * way. That is a jump or goto into a zone's chain, a continue or return, or anything in a prerouting chain
 * (firewalld's raw/mangle/nat_PREROUTING and their zone chains `*_PRE_*`): a prerouting accept, its policy's too,
 * only hands the packet on to the input or forward hook, where the filter decides.
 */
function undecided(chain: string, verdict: string): boolean {
  return (
    /(?:^|_)PRE(?:ROUTING)?(?:_|$)/.test(chain) || /\(verdict (?:(?:jump|goto) \S+|continue|return)\)$/.test(verdict)
  );
}

export function traceVerdicts(monitorOutput: string): string[] {
  const last = new Map<string, { chain: string; verdict: string }>();
  for (const line of monitorOutput.split("\n")) {
    const m = /^trace id (\S+) inet (firewalld|edgepair_guard) (\S+) (rule .*|policy .*)$/.exec(line);
    if (!m) continue;
    const [id, table, chain, verdict] = m.slice(1) as [string, string, string, string];
    // the guard's own accept policy (its output chain sees the LB's answers) decides nothing; its drops do
    if (table === "firewalld" || /\(verdict drop\)$/.test(verdict)) last.set(id, { chain, verdict });
  }
  return [...last.values()].filter((v) => !undecided(v.chain, v.verdict)).map((v) => v.verdict);
}
