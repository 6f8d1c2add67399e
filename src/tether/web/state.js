// Protocol v1 client state for the browser page (DESIGN §3). No DOM, no sockets, no timers:
// every function takes plain values and returns decisions, so it runs and is tested in node.
export { formatRemaining, isAnswering, outcomeText, respondFrame } from "./interrupts.js";

export {
  BACKOFF_BASE_MS, BACKOFF_CAP_MS, Outbox, TERMINAL_CLOSE_CODES, backoffDelayMs, isTerminalClose,
  newCommandId,
} from "./net.js";

export { MAX_NOTE_CHARS } from "./interrupts.js";

const ACTIVE_RUN_STATUSES = new Set(["queued", "running", "waiting"]);
const RUN_EVENT_STATUS = {
  "run.queued": "queued",
  "run.started": "running",
  "run.completed": "completed",
  "run.failed": "failed",
  "run.cancelled": "cancelled",
  "run.interrupted": "interrupted",
};

/**
 * The run status machine (DESIGN §1): queued → running → (waiting ↔ running) →
 * completed | failed | cancelled, plus interrupted (its process died). A retry takes a
 * failed, cancelled or interrupted run back to queued or running. `null` is a run first
 * seen mid-way (the page joined late), so any status may follow it.
 */
export const RUN_TRANSITIONS = {
  queued: ["queued", "running", "waiting", "cancelled", "failed"],
  running: ["running", "waiting", "completed", "failed", "cancelled", "interrupted"],
  waiting: ["waiting", "running", "completed", "failed", "cancelled", "interrupted"],
  interrupted: ["queued", "running", "waiting", "failed", "cancelled"],
  failed: ["queued", "running"],
  cancelled: ["queued", "running"],
  completed: [],
};

/** The status after `next` is reported for a run in `current`; an impossible step keeps
 * `current` (a stale or out-of-order report never moves a finished run). */
export function nextRunStatus(current, next) {
  if (current === null || current === undefined) return next;
  return (RUN_TRANSITIONS[current] ?? []).includes(next) ? next : current;
}

/** True when a run in `status` may be retried. */
export function canRetry(run) {
  return Boolean(run) && (run.status === "cancelled" || run.status === "interrupted"
    || (run.status === "failed" && run.retryable));
}

/** What one `apply` call changed; the view redraws only this. */
export function emptyChange() {
  return {
    reset: false,          // the whole view must be rebuilt (snapshot or another session)
    gap: false,            // events are missing: close and reconnect with the cursor
    messages: new Set(),   // ids of messages whose element must be (re)drawn
    runs: false,           // run status changed
    interrupts: new Set(), // ids of interrupts whose card must be (re)drawn
    tools: new Set(),      // call ids of tool cards that must be (re)drawn
    session: false,        // session title/agent changed
    failures: [],          // runs that failed in this call: {runId, message, retryable}
    applied: 0,
    dropped: 0,
  };
}

/**
 * The fold of one session's event log into what the page shows.
 *
 * Guarantees: an event is applied at most once (seq <= lastSeq is dropped), events apply
 * only in gapless seq order within one epoch (otherwise `gap` is reported and nothing after
 * the hole is applied), and a snapshot replaces everything.
 */
export class SessionState {
  constructor(sessionId = null) {
    this.sessionId = sessionId;
    this.epoch = null;
    this.lastSeq = null; // null: no cursor yet (a snapshot must come first)
    this.user = null;
    this.limits = null;
    this.#clearView();
  }

  #clearView() {
    this.session = null;
    this.messages = new Map(); // message_id -> {id, role, content, partial, runId, commandId}
    this.runs = new Map();     // run_id -> {id, status, messageId, position, error, retryable}
    this.interrupts = new Map(); // interrupt_id -> see `interruptFrom`; pending and resolved
    this.tools = new Map();      // call_id -> {id, runId, tool, args, status, output, error, after}
    this.commandIds = new Set(); // command ids echoed by message.user
  }

  /** The resume cursor, or null when the next hello must ask for a snapshot. */
  cursor() {
    if (this.epoch === null || this.lastSeq === null) return null;
    return { epoch: this.epoch, seq: this.lastSeq };
  }

  /** The first frame of a connection: reopen this session (resuming if we can) or create one. */
  hello(token = "") {
    const frame = { type: "hello" };
    if (token) frame.token = token;
    if (this.sessionId) {
      frame.session_id = this.sessionId;
      const cursor = this.cursor();
      if (cursor) frame.resume = cursor;
    }
    return frame;
  }

  /** Fold one server frame in; returns what changed (see `emptyChange`). */
  apply(frame) {
    const change = emptyChange();
    switch (frame?.type) {
      case "welcome": this.#welcome(frame, change); break;
      case "snapshot": this.#snapshot(frame, change); break;
      case "event": this.#events([frame], change); break;
      case "events": this.#events(frame.events ?? [], change); break;
      default: break; // ack, error, pong: not part of the log
    }
    return change;
  }

  #welcome(frame, change) {
    if (frame.session_id !== this.sessionId) {
      this.#clearView();
      this.lastSeq = null;
      change.reset = true;
    }
    this.sessionId = frame.session_id;
    this.user = frame.user ?? null;
    this.limits = frame.limits ?? null;
    const resumable = frame.recovered && frame.epoch === this.epoch && this.lastSeq !== null;
    if (frame.recovered && !resumable) {
      // The server claims to resume a cursor we do not hold: start over with a snapshot.
      this.forgetCursor();
      change.gap = true;
      return;
    }
    this.epoch = frame.epoch;
    if (!frame.recovered) this.lastSeq = null; // events wait for the snapshot
  }

  #snapshot(frame, change) {
    const previous = this.interrupts;
    this.#clearView();
    this.session = frame.session ?? null;
    for (const m of frame.messages ?? []) {
      this.messages.set(m.message_id, {
        id: m.message_id, role: m.role, content: m.content ?? "",
        partial: Boolean(m.partial), runId: m.run_id ?? null, commandId: m.command_id ?? null,
      });
      if (m.command_id) this.commandIds.add(m.command_id);
    }
    for (const r of frame.runs ?? []) this.runs.set(r.run_id, runFromSnapshot(r));
    for (const t of frame.tools ?? []) {
      if (!t?.call_id) continue;
      this.tools.set(t.call_id, {
        id: t.call_id, runId: t.run_id ?? null, tool: t.tool ?? null, args: t.args ?? null,
        status: ["ok", "error"].includes(t.status) ? t.status : "running",
        output: t.output ?? null, error: t.error ?? null, after: t.after_message_id ?? null,
      });
    }
    // The snapshot's pending list replaces ours. Resolved ones we saw are history that
    // cannot change, so they stay (same session only; a pending one the snapshot lacks was
    // resolved while we were away, with an outcome we do not know: it goes).
    const resolved = [...previous.values()].filter((i) => i.status !== "pending");
    for (const i of resolved) if (this.messages.has(i.after) || i.after === null) {
      this.interrupts.set(i.id, i);
    }
    for (const data of frame.interrupts ?? []) {
      if (data?.interrupt_id && (data.status ?? "pending") === "pending") {
        this.interrupts.set(data.interrupt_id, this.#interruptFrom(data, data.run_id));
      }
    }
    this.lastSeq = frame.as_of_seq;
    change.reset = true;
  }

  #events(events, change) {
    for (const ev of events) {
      if (this.lastSeq === null || ev.seq <= this.lastSeq) {
        change.dropped += 1; // before the snapshot, or already applied
        continue;
      }
      if (ev.epoch !== undefined && ev.epoch !== this.epoch) {
        this.forgetCursor(); // another log incarnation: only a snapshot can help
        change.gap = true;
        return;
      }
      if (ev.seq !== this.lastSeq + 1) {
        change.gap = true;
        return;
      }
      this.#applyEvent(ev, change);
      this.lastSeq = ev.seq;
      change.applied += 1;
    }
  }

  /** Drop the cursor so the next hello asks for a snapshot. */
  forgetCursor() {
    this.lastSeq = null;
  }

  #applyEvent(ev, change) {
    const data = ev.data ?? {};
    const kind = ev.event;
    if (kind === "message.user") {
      const m = this.#message(data.message_id, "user", ev.run_id);
      m.content = data.content ?? "";
      m.commandId = data.command_id ?? null;
      if (m.commandId) this.commandIds.add(m.commandId);
      change.messages.add(m.id);
    } else if (kind === "text.delta") {
      const m = this.#message(data.message_id, "assistant", ev.run_id);
      m.content += data.delta ?? "";
      m.partial = true;
      change.messages.add(m.id);
    } else if (kind === "message.assistant") {
      const m = this.#message(data.message_id, "assistant", ev.run_id);
      m.content = data.content ?? "";
      m.partial = false;
      change.messages.add(m.id);
    } else if (kind === "session.created" || kind === "session.updated") {
      this.session = { ...this.session, ...data };
      change.session = true;
    } else if (kind in RUN_EVENT_STATUS) {
      this.#runEvent(ev, RUN_EVENT_STATUS[kind], change);
    } else if (kind === "interrupt.requested" || kind === "interrupt.resolved") {
      this.#interruptEvent(ev, change);
    }
    else if (kind === "tool.started" || kind === "tool.finished") this.#toolEvent(ev, change);
    else if (kind === "progress") this.#progress(ev, change);
  }

  #toolEvent(ev, change) {
    const data = ev.data ?? {};
    const id = data.call_id;
    if (!id) return;
    let call = this.tools.get(id);
    if (!call) {
      call = {
        id, runId: ev.run_id ?? null, tool: data.tool ?? null, args: data.args ?? null,
        status: "running", output: null, error: null, after: this.#anchorFor(ev.run_id),
      };
      this.tools.set(id, call);
    }
    if (ev.event === "tool.finished") {
      call.status = data.ok === false ? "error" : "ok";
      call.output = data.output ?? null;
      call.error = data.error ?? null;
      if (data.tool) call.tool = data.tool;
    }
    change.tools.add(id);
  }

  #progress(ev, change) {
    const run = this.runs.get(ev.run_id ?? "");
    if (!run) return;
    const data = ev.data ?? {};
    run.progress = {
      label: String(data.label ?? ""),
      done: Number.isFinite(data.done) ? data.done : null,
      total: Number.isFinite(data.total) ? data.total : null,
    };
    change.runs = true;
  }

  #message(id, role, runId) {
    let m = this.messages.get(id);
    if (!m) {
      m = { id, role, content: "", partial: false, runId: runId ?? null, commandId: null };
      this.messages.set(id, m);
    }
    if (!m.runId && runId) m.runId = runId;
    return m;
  }

  #runEvent(ev, status, change) {
    const data = ev.data ?? {};
    const runId = ev.run_id ?? data.run_id;
    if (!runId) return;
    const run = this.runs.get(runId) ?? { id: runId, status: null, messageId: null, position: null };
    const previous = run.status;
    run.status = nextRunStatus(previous, status);
    if (run.status !== status) return; // impossible step: a stale report, ignored
    if (!ACTIVE_RUN_STATUSES.has(status) || previous !== status) run.progress = null;
    if (Number.isFinite(data.attempt)) run.attempt = data.attempt;
    if (data.message_id) run.messageId = data.message_id;
    run.position = data.position ?? null;
    run.error = status === "failed" ? (data.error ?? null) : null;
    run.retryable = status === "failed" ? Boolean(data.retryable) : false;
    this.runs.set(runId, run);
    change.runs = true;
    if (status === "failed") {
      change.failures.push({
        runId, message: run.error?.message ?? "unknown error", retryable: run.retryable,
      });
    }
    // A partial message's "still streaming" look depends on its run being active.
    for (const m of this.messages.values()) if (m.runId === runId) change.messages.add(m.id);
  }

  #interruptEvent(ev, change) {
    const data = ev.data ?? {};
    const id = data.interrupt_id;
    if (!id) return;
    if (ev.event === "interrupt.requested") {
      const runId = ev.run_id ?? data.run_id ?? null;
      this.interrupts.set(id, this.#interruptFrom(data, runId));
      const run = this.runs.get(runId ?? "");
      if (run) run.status = nextRunStatus(run.status, "waiting");
      change.runs = true;
    } else {
      // The run stays "waiting" until `run.started` (resumed) or its end says otherwise.
      const i = this.interrupts.get(id);
      if (!i) return; // requested before our snapshot and resolved since: nothing to show
      i.status = data.outcome ?? "resolved";
      i.answer = data.answer ?? i.answer ?? null;
      i.note = data.note ?? null;
      i.by = data.by ?? null;
      i.settling = false;
      change.runs = true;
    }
    change.interrupts.add(id);
  }

  /** An interrupt as the page keeps it, from `interrupt.requested` data or a snapshot row. */
  #interruptFrom(data, runId) {
    return {
      id: data.interrupt_id,
      runId: runId ?? null,
      kind: data.kind === "approval" ? "approval" : "question",
      callId: data.call_id ?? null,
      tool: data.tool ?? null,
      args: data.args ?? null,
      details: data.details && typeof data.details === "object" ? data.details : null,
      prompt: data.prompt ?? "",
      choices: Array.isArray(data.choices) && data.choices.length ? data.choices.map(String) : null,
      expiresAt: parseTime(data.expires_at),
      onTimeout: data.on_timeout ?? null,
      status: "pending",
      answer: null,
      note: null,
      by: null,
      settling: false, // someone else answered first: the resolved event is on its way
      after: this.#anchorFor(runId),
    };
  }

  /** The message a run's interrupt card follows: the run's latest message, else the one
   * that started it, else the latest of all (null: before every message). */
  #anchorFor(runId) {
    const all = [...this.messages.values()];
    const ofRun = runId ? all.findLast((m) => m.runId === runId) : undefined;
    if (ofRun) return ofRun.id;
    const started = this.runs.get(runId ?? "")?.messageId;
    if (started && this.messages.has(started)) return started;
    return all.at(-1)?.id ?? null;
  }

  /**
   * Our own answer was acked (`result` of the ack; `sent` the respond frame): show the
   * outcome now instead of waiting for `interrupt.resolved`, which says the same.
   */
  acknowledge(sent, result) {
    const change = emptyChange();
    const i = this.interrupts.get(sent?.interrupt_id);
    if (!i || i.status !== "pending" || !result?.outcome) return change;
    i.status = result.outcome;
    if (typeof sent.answer === "string") i.answer = sent.answer;
    if (typeof sent.note === "string") i.note = sent.note;
    change.interrupts.add(i.id);
    return change;
  }

  /** Our answer lost (`conflict`): keep the card closed until `interrupt.resolved` says how. */
  conflicted(interruptId) {
    const change = emptyChange();
    const i = this.interrupts.get(interruptId);
    if (i?.status === "pending") {
      i.settling = true;
      change.interrupts.add(i.id);
    }
    return change;
  }

  /** Pending interrupts, oldest first. */
  pendingInterrupts() {
    return [...this.interrupts.values()].filter((i) => i.status === "pending");
  }

  /** True while an assistant message is still being streamed by an active run. */
  isStreaming(message) {
    if (!message.partial) return false;
    const run = message.runId ? this.runs.get(message.runId) : undefined;
    return run === undefined || ACTIVE_RUN_STATUSES.has(run.status);
  }

  /**
   * The run the status line talks about: the running (or waiting) one, else the oldest
   * queued one, else the most recent one; plus how many others are queued behind it.
   */
  runSummary() {
    const runs = [...this.runs.values()];
    const current = runs.find((r) => r.status === "running" || r.status === "waiting")
      ?? runs.find((r) => r.status === "queued")
      ?? runs.at(-1)
      ?? null;
    const queued = runs.filter((r) => r.status === "queued" && r !== current).length;
    const waitingFor = current?.status === "waiting"
      ? this.pendingInterrupts().find((i) => i.runId === current.id) ?? null
      : null;
    return { run: current, queued, interrupt: waitingFor };
  }

  /** The run a retry button should target: the latest run, when it can be retried. */
  retryRunId() {
    const latest = [...this.runs.values()].at(-1);
    return canRetry(latest) && this.runSummary().run === latest ? latest.id : null;
  }

  /** The run a cancel button should target, or null when nothing can be cancelled. */
  activeRunId() {
    const { run } = this.runSummary();
    return run && ACTIVE_RUN_STATUSES.has(run.status) ? run.id : null;
  }
}

function parseTime(iso) {
  if (typeof iso !== "string" || !iso) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms;
}

function runFromSnapshot(r) {
  return {
    id: r.run_id, status: r.status, messageId: r.message_id ?? null,
    position: r.position ?? null, error: r.error ?? null, retryable: runRetryable(r),
    attempt: r.attempt ?? null, progress: null,
  };
}

/** A failed run from a snapshot is retryable unless its error says otherwise. */
function runRetryable(r) {
  if (typeof r.retryable === "boolean") return r.retryable;
  if (typeof r.error?.retryable === "boolean") return r.error.retryable;
  return r.status === "failed";
}
