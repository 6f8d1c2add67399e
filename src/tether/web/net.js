// Connection policy for the page (DESIGN §3): close codes, reconnect backoff, the outbox of
// unacknowledged commands, and redraw batching. Pure: time, randomness and scheduling come in.

/** Close codes after which the client must not reconnect on its own (DESIGN §3). */
export const TERMINAL_CLOSE_CODES = new Set([1008, 1009, 4400, 4401, 4403, 4404]);

export const BACKOFF_BASE_MS = 250;
export const BACKOFF_CAP_MS = 10_000;

/** True when a close with `code` must stop the client instead of reconnecting. */
export function isTerminalClose(code) {
  return TERMINAL_CLOSE_CODES.has(code);
}

/** Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)). */
export function backoffDelayMs(attempt, random = Math.random,
  baseMs = BACKOFF_BASE_MS, capMs = BACKOFF_CAP_MS) {
  const ceilingMs = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceilingMs);
}

/**
 * What to do after a socket closed with `code`: {action: "stop"} for a terminal code,
 * {action: "offline"} while the browser is offline (wait for its `online` event), else
 * {action: "retry", delayMs} with full-jitter backoff for this `attempt` (0-based).
 */
export function afterClose(code, attempt, online = true, random = Math.random) {
  if (isTerminalClose(code)) return { action: "stop" };
  if (!online) return { action: "offline" };
  return { action: "retry", delayMs: backoffDelayMs(attempt, random) };
}

/** The connection line: "connected", "reconnecting in 3s", "offline", … */
export function connectionText(kind, retryInMs = 0) {
  if (kind === "reconnecting") {
    const s = Math.ceil(Math.max(0, retryInMs) / 1000);
    return s > 0 ? `reconnecting in ${s}s` : "reconnecting";
  }
  return kind;
}

/** A fresh command id (1..64 chars); falls back to getRandomValues outside secure contexts. */
export function newCommandId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Commands sent but not yet acknowledged, in send order. They are re-sent with the same id
 * after a reconnect; the server's idempotency makes the re-send harmless. Bounded.
 */
export class Outbox {
  constructor(maxSize = 100) {
    this.maxSize = maxSize;
    this.frames = new Map(); // id -> frame
  }

  get size() {
    return this.frames.size;
  }

  /** Keep `frame` until its ack; false (and nothing kept) when the outbox is full. */
  add(frame) {
    if (this.frames.size >= this.maxSize) return false;
    this.frames.set(frame.id, frame);
    return true;
  }

  /** Forget the command with this id (acked or rejected); returns its frame, if any. */
  settle(id) {
    const frame = this.frames.get(id);
    this.frames.delete(id);
    return frame;
  }

  pending() {
    return [...this.frames.values()];
  }

  clear() {
    this.frames.clear();
  }
}

/**
 * Collects changes and hands them to `flush` at most once per `schedule` tick (the page
 * passes requestAnimationFrame), so a burst of text deltas costs one redraw a frame.
 */
export class FrameBatcher {
  #pending = null;
  #scheduled = false;

  constructor(schedule, flush) {
    this.schedule = schedule;
    this.flush = flush;
  }

  /** Merge `change` ({reset, messages, interrupts, tools}) into the next flush. */
  add(change = { reset: true }) {
    const p = this.#pending ?? { reset: false, messages: new Set(), interrupts: new Set(), tools: new Set() };
    p.reset ||= Boolean(change.reset);
    for (const id of change.messages ?? []) p.messages.add(id);
    for (const id of change.interrupts ?? []) p.interrupts.add(id);
    for (const id of change.tools ?? []) p.tools.add(id);
    this.#pending = p;
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.schedule(() => this.#run());
  }

  #run() {
    this.#scheduled = false;
    const batch = this.#pending;
    this.#pending = null;
    if (batch) this.flush(batch);
  }
}
