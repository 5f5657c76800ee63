/**
 * spec/pools.ts as properties (fast-check): rangeCidrs(r) is what a routed public pool becomes (one libvirt route
 * per CIDR, lab/topology.ts the same), so it must cover the range exactly, with aligned disjoint blocks and no more
 * of them than the fewest possible; parsePoolEntry of a CIDR is its network through its broadcast address, and of a
 * range its two ends. Ranges anywhere in the IPv4 space, at its edges (0.0.0.0, 255.255.255.255) included.
 */
import fc from "fast-check";
import { broadcastAddress, parseCidr } from "../spec/address";
import { ipv4Number, ipv4Text, parsePoolEntry, rangeCidrs, type Ipv4Range } from "../spec/pools";

const RUNS = { numRuns: 500 };
const TOP = 2 ** 32 - 1;

/** An address as a number: anywhere, or near an edge of the space or of a large aligned block (where bugs live). */
const address = fc.oneof(
  fc.integer({ min: 0, max: TOP }),
  fc.integer({ min: 0, max: 300 }),
  fc.integer({ min: TOP - 300, max: TOP }),
  fc
    .tuple(fc.integer({ min: 1, max: 31 }), fc.integer({ min: -3, max: 3 }), fc.integer({ min: 0, max: 255 }))
    .map(([bits, delta, high]) => Math.min(TOP, Math.max(0, high * 2 ** 24 + 2 ** bits + delta))),
);

/** A range of at most `span` + 1 addresses (rangeCidrs is general; pools hold at most 65536). */
const range = (span: number): fc.Arbitrary<Ipv4Range> =>
  fc
    .tuple(address, fc.integer({ min: 0, max: span }))
    .map(([first, size]) => ({ first, last: Math.min(TOP, first + size) }));

interface Block {
  first: number;
  last: number;
  prefix: number;
}

function block(cidr: string): Block {
  const [a, p] = cidr.split("/");
  const c = parseCidr(cidr);
  if (!c.ok) throw new Error(`rangeCidrs gave ${cidr}: ${c.rule}`); // also proves the block is aligned
  const first = ipv4Number(c.cidr.network);
  expect(ipv4Text(first)).toBe(a);
  return { first, last: ipv4Number(broadcastAddress(c.cidr)), prefix: Number(p) };
}

/**
 * The fewest CIDRs that cover [first, last]: the classic greedy count, computed differently from rangeCidrs (by bit
 * arithmetic over the lowest set bit) so the two do not share a mistake.
 */
function fewest(r: Ipv4Range): number {
  let n = 0;
  let first = r.first;
  while (first <= r.last) {
    let size = first === 0 ? 2 ** 32 : lowestSetBit(first);
    while (size > r.last - first + 1) size /= 2;
    first += size;
    n++;
  }
  return n;
}

function lowestSetBit(n: number): number {
  let b = 1;
  while (Math.floor(n / b) % 2 === 0) b *= 2;
  return b;
}

describe("rangeCidrs, properties over generated ranges", () => {
  test("the blocks are aligned CIDRs, in order, disjoint and adjacent: their union is exactly the range", () => {
    fc.assert(
      fc.property(fc.oneof(range(70_000), range(TOP)), (r) => {
        const blocks = rangeCidrs(r).map(block);
        expect(blocks.length).toBeGreaterThan(0);
        expect(blocks[0]!.first).toBe(r.first);
        expect(blocks[blocks.length - 1]!.last).toBe(r.last);
        // each next block starts right after the previous one ends: no gap, no overlap
        for (let i = 1; i < blocks.length; i++) expect(blocks[i]!.first).toBe(blocks[i - 1]!.last + 1);
        const covered = blocks.reduce((n, b) => n + (b.last - b.first + 1), 0);
        expect(covered).toBe(r.last - r.first + 1);
      }),
      RUNS,
    );
  });

  test("no more blocks than the fewest possible (at most 2 per prefix length), and no two that could merge", () => {
    fc.assert(
      fc.property(fc.oneof(range(70_000), range(TOP)), (r) => {
        const blocks = rangeCidrs(r).map(block);
        expect(blocks.length).toBe(fewest(r));
        expect(blocks.length).toBeLessThanOrEqual(62);
        for (let i = 1; i < blocks.length; i++) {
          const [a, b] = [blocks[i - 1]!, blocks[i]!];
          // two equal adjacent blocks that form an aligned block of twice the size would be one CIDR
          const mergeable = a.prefix === b.prefix && a.prefix > 0 && a.first % 2 ** (33 - a.prefix) === 0;
          expect(mergeable).toBe(false);
        }
      }),
      RUNS,
    );
  });

  test("a range that is one CIDR gives that CIDR; a single address gives its /32", () => {
    fc.assert(
      fc.property(address, fc.integer({ min: 0, max: 32 }), (a, prefix) => {
        const size = 2 ** (32 - prefix);
        const first = Math.floor(a / size) * size;
        expect(rangeCidrs({ first, last: first + size - 1 })).toEqual([`${ipv4Text(first)}/${prefix}`]);
        expect(rangeCidrs({ first: a, last: a })).toEqual([`${ipv4Text(a)}/32`]);
      }),
      RUNS,
    );
  });

  test("the whole space and its edges", () => {
    expect(rangeCidrs({ first: 0, last: TOP })).toEqual(["0.0.0.0/0"]);
    expect(rangeCidrs({ first: TOP, last: TOP })).toEqual(["255.255.255.255/32"]);
    expect(rangeCidrs({ first: 1, last: TOP - 1 })).toHaveLength(62);
    expect(rangeCidrs({ first: ipv4Number(ip("192.168.100.200")), last: ipv4Number(ip("192.168.100.239")) })).toEqual([
      "192.168.100.200/29",
      "192.168.100.208/28",
      "192.168.100.224/28",
    ]);
  });
});

function ip(text: string) {
  const c = parseCidr(`${text}/32`);
  if (!c.ok) throw new Error(text);
  return c.cidr.network;
}

/** Two ends: anywhere (mostly too far apart), close together, or close together and reversed. */
const ends = fc.oneof(
  fc.tuple(address, address),
  range(70_000).map((r) => [r.first, r.last] as const),
  range(70_000).map((r) => [r.last, r.first] as const),
);

describe("parsePoolEntry, properties", () => {
  test("a CIDR of /16 or narrower is its network through its broadcast address", () => {
    fc.assert(
      fc.property(address, fc.integer({ min: 16, max: 32 }), (a, prefix) => {
        const size = 2 ** (32 - prefix);
        const network = Math.floor(a / size) * size;
        const text = `${ipv4Text(network)}/${prefix}`;
        const parsed = parsePoolEntry(text);
        expect(parsed).toEqual({ ok: true, range: { first: network, last: network + size - 1 } });
        // and rangeCidrs gives the same CIDR back
        if (parsed.ok) expect(rangeCidrs(parsed.range)).toEqual([text]);
      }),
      RUNS,
    );
  });

  test("a CIDR wider than /16 is refused, whatever its address", () => {
    fc.assert(
      fc.property(address, fc.integer({ min: 0, max: 15 }), (a, prefix) => {
        const size = 2 ** (32 - prefix);
        const text = `${ipv4Text(Math.floor(a / size) * size)}/${prefix}`;
        expect(parsePoolEntry(text)).toEqual({
          ok: false,
          rule: `must be /16 or narrower (65536 addresses), not /${prefix}`,
        });
      }),
      RUNS,
    );
  });

  test("a range first-last is its two ends; reversed it is refused; over 65536 addresses it is refused", () => {
    fc.assert(
      fc.property(ends, ([x, y]) => {
        const text = `${ipv4Text(x)}-${ipv4Text(y)}`;
        const parsed = parsePoolEntry(text);
        if (x > y) expect(parsed).toMatchObject({ ok: false, rule: expect.stringMatching(/^is reversed: /) });
        else if (y - x >= 65536) expect(parsed).toEqual({ ok: false, rule: "must hold at most 65536 addresses" });
        else expect(parsed).toEqual({ ok: true, range: { first: x, last: y } });
      }),
      RUNS,
    );
  });
});
