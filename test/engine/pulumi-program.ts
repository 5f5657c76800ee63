/**
 * Runs a Pulumi program with the real engine built by ./tools/build-engines (tools/engines/README.md): the
 * `pulumi` CLI, the project's pulumi-language-nodejs and the pulumi-resource-pulumi-nodejs wrapper for dynamic
 * providers, found in `${EDGEPAIR_ENGINES:-/var/cache/edgepair-engines}/bin`.
 *
 * Each workspace is a temp dir with
 *   project/   the program files, Pulumi.yaml (+ package.json and tsconfig.json unless given) and node_modules as a
 *              symlink to this checkout's node_modules (the language host finds @pulumi/pulumi/cmd/run, typescript
 *              and ts-node through it; nothing is installed)
 *   state/     the file backend (PULUMI_BACKEND_URL=file://...)
 *   home/      PULUMI_HOME
 * and its own random PULUMI_CONFIG_PASSPHRASE. Inherited PULUMI_* variables are dropped. Every CLI call is
 * non-interactive, runs in its own process group with a timeout (the group is killed on timeout and any leftover
 * of it after exit) and throws PulumiCommandError, with the output, on a non-zero exit.
 *
 *   const ws = await PulumiWorkspace.create({ name: "first", files: "test/engine/programs/first", config, secrets });
 *   await ws.preview(); await ws.up(); await ws.outputs({ showSecrets: true }); await ws.dispose();
 */
import { spawn } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");

export function enginesDir(): string {
  return process.env.EDGEPAIR_ENGINES || "/var/cache/edgepair-engines";
}

const REQUIRED_BINARIES = ["pulumi", "pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"];

/** Bin dir of the engines; throws (never skips) when a binary is missing. */
export function requireEngines(): string {
  const bin = path.join(enginesDir(), "bin");
  const missing = REQUIRED_BINARIES.filter((b) => {
    try {
      fs.accessSync(path.join(bin, b), fs.constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new Error(
      `Pulumi engine binaries missing in ${bin}: ${missing.join(", ")}. Run ./tools/build-engines from the repo root ` +
        `(set EDGEPAIR_ENGINES if the engines live elsewhere).`,
    );
  }
  return bin;
}

export type ConfigValue = string | number | boolean;

export interface WorkspaceOptions {
  /** Project name (Pulumi.yaml `name`, unless `files` has a Pulumi.yaml). */
  name: string;
  /** Program files (relative path → content), or a directory whose contents are copied (node_modules excluded). */
  files: Record<string, string> | string;
  stack?: string;
  config?: Record<string, ConfigValue>;
  secrets?: Record<string, string>;
  /** Per CLI call, default 240 s. */
  timeoutMs?: number;
  /** Type-check the program with ts-node (default false: PULUMI_NODEJS_TRANSPILE_ONLY=true; `tsc` checks it). */
  typecheck?: boolean;
  /** Extra environment for the CLI (and so the language host, the program and the providers). */
  env?: Record<string, string>;
}

export interface RunResult {
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  /** Return a non-zero exit instead of throwing. */
  allowFailure?: boolean;
}

export class PulumiCommandError extends Error {
  constructor(
    message: string,
    readonly result: RunResult,
  ) {
    super(message);
    this.name = "PulumiCommandError";
  }
}

/** One resource in a preview: from `pulumi preview --json` steps, or "same" for state resources not listed. */
export interface PreviewStep {
  urn: string;
  type: string;
  name: string;
  op: string;
  /** Changed properties: the engine's diffReasons / detailedDiff keys, else top-level inputs that differ. */
  diffs: string[];
  /** replaceReasons (properties forcing a replacement). */
  replaces: string[];
  /** false when the step is absent from the JSON (the CLI lists unchanged resources only for the stack). */
  listed: boolean;
}

export interface PreviewResult extends RunResult {
  steps: PreviewStep[];
  /** Steps by resource name (the last URN segment); the stack is `<project>-<stack>`. */
  byName: Record<string, PreviewStep>;
  changeSummary: Record<string, number>;
  json: unknown;
}

export interface UpdateSummary {
  kind: string;
  result: string;
  resourceChanges: Record<string, number>;
}

export interface UpdateResult extends RunResult {
  summary: UpdateSummary;
}

export interface StateResource {
  urn: string;
  type: string;
  id?: string;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
}

export interface Timing {
  command: string;
  ms: number;
}

function urnName(urn: string): string {
  return urn.split("::").pop() ?? urn;
}

function urnType(urn: string): string {
  const parts = urn.split("::");
  return parts.length >= 2 ? (parts[parts.length - 2].split("$").pop() ?? "") : "";
}

function differingKeys(a: Record<string, unknown> | undefined, b: Record<string, unknown> | undefined): string[] {
  const keys = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]);
  return [...keys].filter((k) => k !== "__provider" && JSON.stringify(a?.[k]) !== JSON.stringify(b?.[k])).sort();
}

function writeTree(root: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    const target = path.resolve(root, rel);
    if (!target.startsWith(root + path.sep)) {
      throw new Error(`program file ${rel} is outside the project dir`);
    }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, content);
  }
}

const DEFAULT_TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    module: "node16",
    moduleResolution: "node16",
    lib: ["ES2022"],
    types: ["node"],
    strict: true,
    esModuleInterop: true,
    skipLibCheck: true,
  },
};

export class PulumiWorkspace {
  readonly timings: Timing[] = [];
  private disposed = false;

  private constructor(
    /** Temp root holding project/, state/ and home/. */
    readonly root: string,
    readonly projectDir: string,
    readonly backendDir: string,
    readonly project: string,
    readonly stack: string,
    private readonly pulumiBin: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly timeoutMs: number,
  ) {}

  static async create(opts: WorkspaceOptions): Promise<PulumiWorkspace> {
    const bin = requireEngines();
    const safeName = opts.name.replace(/[^A-Za-z0-9_.-]/g, "-");
    const root = fs.mkdtempSync(path.join(os.tmpdir(), `edgepair-pulumi-${safeName}-`));
    try {
      const projectDir = path.join(root, "project");
      const backendDir = path.join(root, "state");
      const home = path.join(root, "home");
      for (const d of [projectDir, backendDir, home]) fs.mkdirSync(d, { recursive: true });

      if (typeof opts.files === "string") {
        const src = path.resolve(REPO_ROOT, opts.files);
        fs.cpSync(src, projectDir, {
          recursive: true,
          filter: (p) => path.basename(p) !== "node_modules",
        });
      } else {
        writeTree(projectDir, opts.files);
      }
      const has = (f: string) => fs.existsSync(path.join(projectDir, f));
      if (!has("Pulumi.yaml")) {
        fs.writeFileSync(
          path.join(projectDir, "Pulumi.yaml"),
          `name: ${opts.name}\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n`,
        );
      }
      if (!has("package.json")) {
        fs.writeFileSync(
          path.join(projectDir, "package.json"),
          JSON.stringify({ name: safeName, private: true }) + "\n",
        );
      }
      if (!has("tsconfig.json")) {
        fs.writeFileSync(path.join(projectDir, "tsconfig.json"), JSON.stringify(DEFAULT_TSCONFIG, null, 2) + "\n");
      }
      const modules = path.join(REPO_ROOT, "node_modules");
      if (!fs.existsSync(path.join(modules, "@pulumi", "pulumi", "cmd", "run", "index.js"))) {
        throw new Error(`${modules} has no @pulumi/pulumi: run \`npm ci\` in ${REPO_ROOT}`);
      }
      fs.symlinkSync(modules, path.join(projectDir, "node_modules"), "dir");

      const env: NodeJS.ProcessEnv = {};
      for (const [k, v] of Object.entries(process.env)) {
        if (!k.startsWith("PULUMI_")) env[k] = v;
      }
      Object.assign(env, {
        PATH: [bin, path.dirname(process.execPath), process.env.PATH ?? ""].join(path.delimiter),
        PULUMI_BACKEND_URL: `file://${backendDir}`,
        PULUMI_HOME: home,
        PULUMI_CONFIG_PASSPHRASE: randomBytes(24).toString("base64"),
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        PULUMI_SKIP_CONFIRMATIONS: "true",
        PULUMI_NODEJS_TRANSPILE_ONLY: opts.typecheck ? "false" : "true",
        NO_COLOR: "1",
        ...opts.env,
      });

      const stack = opts.stack ?? "test";
      const ws = new PulumiWorkspace(
        root,
        projectDir,
        backendDir,
        opts.name,
        stack,
        path.join(bin, "pulumi"),
        env,
        opts.timeoutMs ?? 240_000,
      );
      await ws.run(["stack", "init", stack]);
      for (const [k, v] of Object.entries(opts.config ?? {})) await ws.setConfig(k, v);
      for (const [k, v] of Object.entries(opts.secrets ?? {})) await ws.setConfig(k, v, { secret: true });
      return ws;
    } catch (e) {
      fs.rmSync(root, { recursive: true, force: true });
      throw e;
    }
  }

  /** Runs `pulumi <args> --non-interactive` in the project dir. */
  run(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    const fullArgs = [...args, "--non-interactive"];
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const started = Date.now();
    return new Promise<RunResult>((resolve, reject) => {
      const child = spawn(this.pulumiBin, fullArgs, {
        cwd: this.projectDir,
        env: this.env,
        detached: true, // own process group: the language host, node and the providers go with it
        stdio: ["pipe", "pipe", "pipe"],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on("data", (b: Buffer) => out.push(b));
      child.stderr.on("data", (b: Buffer) => err.push(b));
      let timedOut = false;
      const killGroup = (signal: NodeJS.Signals) => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, signal);
        } catch {
          // group already gone
        }
      };
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup("SIGTERM");
        setTimeout(() => killGroup("SIGKILL"), 5000).unref();
      }, timeoutMs);
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        killGroup("SIGKILL"); // leftovers of this call's group, if any
        const result: RunResult = {
          args: fullArgs,
          code: code ?? 128,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
          ms: Date.now() - started,
        };
        this.timings.push({
          command: args
            .slice(0, 2)
            .filter((a) => !a.startsWith("-"))
            .join(" "),
          ms: result.ms,
        });
        if (timedOut || (result.code !== 0 && !opts.allowFailure)) {
          const why = timedOut ? `timed out after ${timeoutMs} ms` : `exited with ${code ?? signal}`;
          reject(
            new PulumiCommandError(
              `pulumi ${fullArgs.join(" ")} ${why}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`,
              result,
            ),
          );
          return;
        }
        resolve(result);
      });
      child.stdin.end(opts.input ?? "");
    });
  }

  async setConfig(key: string, value: ConfigValue, opts: { secret?: boolean } = {}): Promise<void> {
    // The value goes through stdin (--raw keeps it byte for byte), never on a command line.
    // --secret, --plaintext and --type exclude each other; secrets are strings.
    const args = ["config", "set", key, "--raw"];
    if (opts.secret) args.push("--secret");
    else if (typeof value === "number") args.push("--type", Number.isInteger(value) ? "int" : "float");
    else if (typeof value === "boolean") args.push("--type", "bool");
    else args.push("--plaintext");
    await this.run(args, { input: String(value) });
  }

  async preview(opts: { diff?: boolean; expectNoChanges?: boolean } = {}): Promise<RunResult> {
    const args = ["preview", "--color", "never"];
    if (opts.diff) args.push("--diff");
    if (opts.expectNoChanges) args.push("--expect-no-changes");
    return this.run(args);
  }

  /** `pulumi preview --json`, one PreviewStep per resource of the program and of the current state. */
  async previewJson(): Promise<PreviewResult> {
    const result = await this.run(["preview", "--json"]);
    const json = JSON.parse(result.stdout) as {
      steps?: Array<{
        op: string;
        urn: string;
        diffReasons?: string[];
        replaceReasons?: string[];
        detailedDiff?: Record<string, unknown> | null;
        oldState?: { type?: string; inputs?: Record<string, unknown> };
        newState?: { type?: string; inputs?: Record<string, unknown> };
      }>;
      changeSummary?: Record<string, number>;
    };
    const steps: PreviewStep[] = (json.steps ?? []).map((s) => {
      let diffs = s.diffReasons ?? (s.detailedDiff ? Object.keys(s.detailedDiff) : []);
      if (diffs.length === 0 && s.op !== "create" && s.op !== "delete" && s.op !== "same") {
        diffs = differingKeys(s.oldState?.inputs, s.newState?.inputs);
      }
      return {
        urn: s.urn,
        type: s.newState?.type ?? s.oldState?.type ?? urnType(s.urn),
        name: urnName(s.urn),
        op: s.op,
        diffs: [...diffs].sort(),
        replaces: [...(s.replaceReasons ?? [])].sort(),
        listed: true,
      };
    });
    const listed = new Set(steps.map((s) => s.urn));
    for (const r of await this.resources()) {
      if (!listed.has(r.urn)) {
        steps.push({
          urn: r.urn,
          type: r.type,
          name: urnName(r.urn),
          op: "same",
          diffs: [],
          replaces: [],
          listed: false,
        });
      }
    }
    const byName: Record<string, PreviewStep> = {};
    for (const s of steps) byName[s.name] = s;
    return { ...result, steps, byName, changeSummary: json.changeSummary ?? {}, json };
  }

  async up(opts: { expectNoChanges?: boolean } = {}): Promise<UpdateResult> {
    const args = ["up", "--yes", "--skip-preview", "--color", "never", "--suppress-progress"];
    if (opts.expectNoChanges) args.push("--expect-no-changes");
    const result = await this.run(args);
    return { ...result, summary: await this.lastUpdate() };
  }

  /** `pulumi refresh`; with expectNoChanges (default true) any drift makes it fail. */
  async refresh(opts: { expectNoChanges?: boolean } = {}): Promise<UpdateResult> {
    const args = ["refresh", "--yes", "--skip-preview", "--color", "never", "--suppress-progress"];
    if (opts.expectNoChanges ?? true) args.push("--expect-no-changes");
    const result = await this.run(args);
    return { ...result, summary: await this.lastUpdate() };
  }

  async destroy(): Promise<UpdateResult> {
    const result = await this.run(["destroy", "--yes", "--skip-preview", "--color", "never", "--suppress-progress"]);
    return { ...result, summary: await this.lastUpdate() };
  }

  /** The most recent update/refresh/destroy of the stack (`pulumi stack history --json`). */
  async lastUpdate(): Promise<UpdateSummary> {
    const result = await this.run(["stack", "history", "--output", "json", "--page-size", "1"]);
    const entries = JSON.parse(result.stdout) as Array<Partial<UpdateSummary> & { version?: number }>;
    if (entries.length === 0) throw new Error("stack history is empty");
    const latest = entries.reduce((a, b) => ((b.version ?? 0) > (a.version ?? 0) ? b : a));
    return { kind: latest.kind ?? "", result: latest.result ?? "", resourceChanges: latest.resourceChanges ?? {} };
  }

  /** Stack outputs; secrets are "[secret]" unless showSecrets. */
  async outputs(opts: { showSecrets?: boolean } = {}): Promise<Record<string, unknown>> {
    const args = ["stack", "output", "--json"];
    if (opts.showSecrets) args.push("--show-secrets");
    return JSON.parse((await this.run(args)).stdout) as Record<string, unknown>;
  }

  /** `pulumi stack export` (secrets stay ciphertext unless showSecrets). */
  async exportState(opts: { showSecrets?: boolean } = {}): Promise<{ text: string; json: any }> {
    const args = ["stack", "export"];
    if (opts.showSecrets) args.push("--show-secrets");
    const text = (await this.run(args)).stdout;
    return { text, json: JSON.parse(text) };
  }

  /** Resources in the current state, the stack and provider resources included. */
  async resources(): Promise<StateResource[]> {
    const { json } = await this.exportState();
    return ((json?.deployment?.resources ?? []) as StateResource[]).map((r) => ({
      urn: r.urn,
      type: r.type,
      id: r.id,
      inputs: r.inputs,
      outputs: r.outputs,
    }));
  }

  /** Every regular file under dir (the backend dir by default) with its content, for plaintext searches. */
  files(dir: string = this.backendDir): Array<{ path: string; content: Buffer }> {
    const found: Array<{ path: string; content: Buffer }> = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile()) found.push({ path: p, content: fs.readFileSync(p) });
      }
    };
    walk(dir);
    return found;
  }

  /**
   * Destroys what is left, removes the stack and the temp dir (kept, and its path printed, when
   * EDGEPAIR_KEEP_PULUMI_WORKSPACE=1). Errors of destroy/stack rm are rethrown after the cleanup.
   */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    let failure: unknown;
    try {
      const left = (await this.resources()).filter((r) => r.type !== "pulumi:pulumi:Stack");
      if (left.length > 0) await this.destroy();
      await this.run(["stack", "rm", "--yes", "--force"]);
    } catch (e) {
      failure = e;
    }
    if (process.env.EDGEPAIR_KEEP_PULUMI_WORKSPACE === "1") {
      process.stderr.write(`kept Pulumi workspace ${this.root}\n`);
    } else {
      fs.rmSync(this.root, { recursive: true, force: true });
    }
    if (failure) throw failure;
  }
}
