/** The ready gate (providers/edgepair/ready-gate.ts) against a real HTTP server on loopback. */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readyGateProvider, waitReady } from "../providers/edgepair/ready-gate";

let server: Server;
let url = "";
let answers: number[] = [];

beforeAll(async () => {
  server = createServer((_req, res) => {
    res.writeHead(answers.shift() ?? 200).end("ok");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

test("waits through 503s until the LB answers 200", async () => {
  answers = [503, 503, 503];
  const waited = await waitReady(url, 10_000, 50);
  expect(waited).toBeGreaterThanOrEqual(100);
  expect(answers).toEqual([]);
});

test("counter-case: never 200 within the timeout fails naming the URL and the last answer; nothing answering fails too", async () => {
  answers = Array(100).fill(503);
  await expect(waitReady(url, 300, 50)).rejects.toThrow(
    new RegExp(`ready gate: ${url.replace(/[.?]/g, "\\$&")} did not answer 200 within 0 s \\(last: HTTP 503\\)`),
  );
  answers = [];
  // a port nothing listens on (fetch refuses "bad ports" such as 1 by itself)
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  await expect(waitReady(`http://127.0.0.1:${port}/healthz`, 200, 50)).rejects.toThrow(/ECONNREFUSED/);
});

test("the provider: a replaced VM (new `after`) runs the gate again as an in-place update; disabled, it records only", async () => {
  const created = await readyGateProvider.create!({ url, after: "vm-1", timeoutSeconds: 5 });
  expect(created.id).toBe("gate-vm-1");
  const d = await readyGateProvider.diff!("gate-vm-1", created.outs, { url, after: "vm-2", timeoutSeconds: 5 });
  expect(d).toMatchObject({ changes: true, replaces: [] });
  expect(
    await readyGateProvider.diff!("gate-vm-1", created.outs, { url, after: "vm-1", timeoutSeconds: 5 }),
  ).toMatchObject({ changes: false });
  answers = [503, 503];
  const updated = await readyGateProvider.update!("gate-vm-1", created.outs, { url, after: "vm-2", timeoutSeconds: 5 });
  expect(updated.outs?.waitedMs).toBeGreaterThan(0);
  const off = await readyGateProvider.create!({ url: "http://127.0.0.1:1/healthz", after: "vm-3", enabled: false });
  expect(off.outs.waitedMs).toBe(0);
});
