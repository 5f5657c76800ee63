/**
 * The agent's end of keepalived's notify path: the notify script writes one line "<STATE> <PRIORITY>" per
 * transition to /run/edgepair/vrrp.fifo without ever blocking (render/notify.ts). The agent opens the FIFO read-write
 * and non-blocking: a FIFO opened for reading alone reports end-of-file whenever no writer has it open, which
 * would end the stream after the first transition; holding a write end itself keeps it open for the agent's life.
 */
import { execFileSync } from "node:child_process";
import { closeSync, constants, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import { Socket } from "node:net";
import { dirname } from "node:path";
import { isKeepalivedState, type KeepalivedState } from "../../render/vrrp-state";

export interface Transition {
  state: KeepalivedState;
  priority: number;
  /** epoch ms the agent read it */
  at: number;
}

/** A line longer than this is not the notify script's: drop it rather than buffer without bound. */
const MAX_LINE = 256;

export function parseTransition(line: string, at: number): Transition | undefined {
  const [state, priority, ...rest] = line.trim().split(/\s+/);
  if (rest.length > 0 || state === undefined || !isKeepalivedState(state)) return undefined;
  const p = Number(priority);
  if (!Number.isInteger(p) || p < 0 || p > 255) return undefined;
  return { state, priority: p, at };
}

export interface FifoListener {
  close(): void;
}

/**
 * Creates the FIFO (mode 0600) when missing and calls `onTransition` for every well-formed line; malformed lines go
 * to `onNoise` (never thrown: a stray writer must not stop the agent).
 */
export function listenVrrpFifo(
  path: string,
  onTransition: (t: Transition) => void,
  onNoise: (line: string) => void = () => {},
): FifoListener {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  if (!existsSync(path)) execFileSync("mkfifo", ["-m", "600", path]);
  if (!statSync(path).isFIFO()) throw new Error(`${path}: exists and is not a FIFO`);
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  const socket = new Socket({ fd, readable: true, writable: false });
  let buffer = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      const t = parseTransition(line, Date.now());
      if (t) onTransition(t);
      else if (line.trim() !== "") onNoise(line.slice(0, MAX_LINE));
    }
    if (buffer.length > MAX_LINE) {
      onNoise(buffer.slice(0, MAX_LINE));
      buffer = "";
    }
  });
  socket.on("error", () => {
    // the FIFO vanished (tmpfs /run remounted): the agent re-creates it on its next start; nothing to do here
  });
  let closed = false;
  return {
    close() {
      if (closed) return;
      closed = true;
      socket.destroy();
      try {
        closeSync(fd);
      } catch {
        // already closed by the socket
      }
    },
  };
}
