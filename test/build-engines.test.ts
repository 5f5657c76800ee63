/**
 * tools/build-engines takes turns per cache: a run that finds the cache's lock held (another build, CI beside a
 * developer's `npm test`) waits for it instead of writing the same binaries and stamps at once. Against the real
 * cache, which `npm test` has built before jest starts, so the run itself only finds everything cached.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const REPO = join(__dirname, "..");
const CACHE = process.env.EDGEPAIR_ENGINES || "/var/cache/edgepair-engines";
const cached = existsSync(join(CACHE, "bin", "pulumi")) && spawnSync("flock", ["--version"]).status === 0;

(cached ? describe : describe.skip)("build-engines lock", () => {
  test("a second build waits while the cache's lock is held, then finds every engine cached", async () => {
    const holdMs = 2500;
    // the lock as a running build holds it: flock on the same file, for a bounded time
    const holder = spawn("flock", [join(CACHE, ".lock"), "sleep", String(holdMs / 1000)], { stdio: "ignore" });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const t = Date.now();
      const r = spawnSync(join(REPO, "tools", "build-engines"), [], { encoding: "utf8", timeout: 120_000 });
      const elapsed = Date.now() - t;
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`another build holds ${CACHE}/.lock; waiting for it`);
      expect(r.stdout).toMatch(/pulumi: cached/);
      expect(r.stdout).toMatch(/pulumi-resource-kubernetes: cached/);
      expect(r.stdout).toMatch(
        /pulumi-resource-kubernetes 4\.24\.0 \(github\.com\/pulumi\/pulumi-kubernetes\/provider\/v4@/,
      );
      expect(elapsed).toBeGreaterThanOrEqual(holdMs - 300 - 200);
    } finally {
      holder.kill();
    }
    // counter-case: with the lock free it does not wait
    const free = spawnSync(join(REPO, "tools", "build-engines"), [], { encoding: "utf8", timeout: 120_000 });
    expect(free.status).toBe(0);
    expect(free.stdout).not.toContain("waiting for it");
  });
});
