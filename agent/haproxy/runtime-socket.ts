/**
 * A client for HAProxy's runtime API (the worker's `stats socket ... level admin`). One command per connection:
 * HAProxy's non-interactive mode answers and closes, so a command can never read a previous command's leftovers,
 * and a hung HAProxy costs one bounded timeout, not a stuck agent.
 *
 * The API has no exit status: success is an empty answer for most commands and a fixed sentence for a few
 * ("New server registered.", "Server deleted."). Callers say what success looks like; anything else is an error
 * carrying the command and HAProxy's own words.
 */
import { createConnection } from "node:net";

export const DEFAULT_TIMEOUT_MS = 2000;

export class RuntimeApiError extends Error {
  constructor(
    readonly command: string,
    /** HAProxy's answer (trimmed), or empty when there was none */
    readonly answer: string,
    reason: string,
  ) {
    super(`haproxy runtime API: "${command}" ${reason}${answer !== "" ? `: ${answer}` : ""}`);
    this.name = "RuntimeApiError";
  }
}

/** What counts as success: an empty answer, or an answer matching the pattern. */
export type Expectation = "empty" | RegExp;

export class RuntimeSocket {
  constructor(
    readonly path: string,
    readonly timeoutMs: number = DEFAULT_TIMEOUT_MS,
  ) {}

  /** Sends one command and returns HAProxy's raw answer; throws only when the socket itself fails or times out. */
  async send(command: string): Promise<string> {
    checkCommand(command);
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path: this.path });
      let answer = "";
      let settled = false;
      const finish = (error?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        if (error) reject(error);
        else resolve(answer);
      };
      const timer = setTimeout(
        () =>
          finish(
            new RuntimeApiError(
              command,
              answer.trim(),
              `got no complete answer within ${this.timeoutMs} ms from ${this.path}`,
            ),
          ),
        this.timeoutMs,
      );
      socket.setEncoding("utf8");
      socket.on("connect", () => socket.write(`${command}\n`));
      socket.on("data", (d: string) => (answer += d));
      socket.on("end", () => finish());
      socket.on("close", () => finish());
      socket.on("error", (e: NodeJS.ErrnoException) =>
        finish(new RuntimeApiError(command, "", `could not be sent to ${this.path} (${e.code ?? e.message})`)),
      );
    });
  }

  /** Sends one command and checks the answer against `expect`; returns the answer. */
  async run(command: string, expect: Expectation = "empty"): Promise<string> {
    const answer = await this.send(command);
    const trimmed = answer.trim();
    const ok = expect === "empty" ? trimmed === "" : expect.test(trimmed);
    if (!ok) throw new RuntimeApiError(command, trimmed, "failed");
    return answer;
  }
}

/**
 * The CLI splits its input on newlines and ";": a name carrying either would run a second command. Names come from
 * render/haproxy.ts serverName (letters, digits, "-_.:") but the socket does not rely on that.
 */
function checkCommand(command: string): void {
  if (command.trim() === "") throw new RuntimeApiError(command, "", "is empty");
  if (/[\n\r;]/.test(command))
    throw new RuntimeApiError(
      command.replace(/[\n\r]/g, "\\n"),
      "",
      "contains a newline or ';' (one command per call)",
    );
}
