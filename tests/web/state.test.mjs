// Pure state logic of the browser page: run with `node --test src/tether/web/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Outbox, SessionState, backoffDelayMs, isTerminalClose, newCommandId,
} from "../../src/tether/web/state.js";

const EPOCH = "e1";

function welcome(recovered, { sessionId = "s1", epoch = EPOCH } = {}) {
  return {
    type: "welcome", session_id: sessionId, epoch, head_seq: 0, recovered,
    user: "local", server_id: "srv", limits: { max_message_chars: 100 },
  };
}

function snapshot(asOfSeq, messages = [], runs = []) {
  return {
    type: "snapshot", as_of_seq: asOfSeq, session: { title: "t" }, messages, runs,
    interrupts: [],
  };
}

function ev(seq, event, data, runId = "r1", epoch = EPOCH) {
  return {
    type: "event", seq, epoch, ts: "2025-01-01T00:00:00Z", session_id: "s1",
    run_id: runId, event, data,
  };
}

const delta = (seq, text) => ev(seq, "text.delta", { message_id: "a1", delta: text });

/** A state attached to session s1 with an empty snapshot at `asOfSeq`. */
function attached(asOfSeq = 0) {
  const state = new SessionState("s1");
  state.apply(welcome(false));
  state.apply(snapshot(asOfSeq));
  return state;
}

test("hello creates a session, reopens one, and resumes from the cursor", () => {
  assert.deepEqual(new SessionState().hello(), { type: "hello" });
  assert.deepEqual(new SessionState("s1").hello("tok"), {
    type: "hello", token: "tok", session_id: "s1",
  });
  const state = attached(4);
  assert.deepEqual(state.hello(), { type: "hello", session_id: "s1", resume: { epoch: EPOCH, seq: 4 } });
});

test("an event with seq <= last seq is dropped, so text never duplicates", () => {
  const state = attached();
  state.apply(delta(1, "Hel"));
  state.apply(delta(2, "lo"));
  const change = state.apply(delta(2, "lo"));
  assert.equal(change.dropped, 1);
  assert.equal(change.applied, 0);
  assert.equal(change.messages.size, 0);
  state.apply(delta(1, "Hel"));
  assert.equal(state.messages.get("a1").content, "Hello");
  assert.equal(state.lastSeq, 2);
});

test("a batch that overlaps what was applied applies only the new tail", () => {
  const state = attached();
  state.apply(delta(1, "a"));
  state.apply(delta(2, "b"));
  const change = state.apply({ type: "events", events: [delta(1, "a"), delta(2, "b"), delta(3, "c"), delta(4, "d")] });
  assert.equal(change.dropped, 2);
  assert.equal(change.applied, 2);
  assert.deepEqual([...change.messages], ["a1"]);
  assert.equal(state.messages.get("a1").content, "abcd");
  assert.equal(state.lastSeq, 4);
});

test("a gap is reported, nothing after the hole applies, and the cursor is kept", () => {
  const state = attached();
  state.apply(delta(1, "a"));
  const change = state.apply({ type: "events", events: [delta(2, "b"), delta(4, "d"), delta(5, "e")] });
  assert.equal(change.gap, true);
  assert.equal(change.applied, 1);
  assert.equal(state.messages.get("a1").content, "ab");
  assert.deepEqual(state.cursor(), { epoch: EPOCH, seq: 2 });
  assert.equal(state.apply(delta(4, "d")).gap, true);
});

test("an event of another epoch is a gap and drops the cursor, so a snapshot follows", () => {
  const state = attached(3);
  const change = state.apply(ev(4, "text.delta", { message_id: "a1", delta: "x" }, "r1", "e2"));
  assert.equal(change.gap, true);
  assert.equal(state.cursor(), null);
  assert.deepEqual(state.hello(), { type: "hello", session_id: "s1" });
});

test("resume: welcome recovered keeps the view and continues after the cursor", () => {
  const state = attached();
  state.apply(delta(1, "a"));
  const change = state.apply(welcome(true));
  assert.equal(change.reset, false);
  assert.equal(change.gap, false);
  state.apply({ type: "events", events: [delta(1, "a"), delta(2, "b")] });
  assert.equal(state.messages.get("a1").content, "ab");
});

test("welcome recovered without a matching cursor asks for a snapshot", () => {
  const state = attached(2);
  const change = state.apply(welcome(true, { epoch: "other" }));
  assert.equal(change.gap, true);
  assert.equal(state.cursor(), null);
});

test("events between a non-recovered welcome and its snapshot are not applied", () => {
  const state = new SessionState("s1");
  state.apply(welcome(false));
  assert.equal(state.apply(delta(1, "early")).dropped, 1);
  assert.equal(state.messages.size, 0);
});

test("a snapshot replaces everything and sets the cursor to as_of_seq", () => {
  const state = attached();
  state.apply(ev(1, "message.user", { message_id: "u0", content: "old", command_id: "c0" }));
  state.apply(delta(2, "stale"));
  const change = state.apply(snapshot(10, [
    { message_id: "u1", role: "user", content: "hi" },
    { message_id: "a9", role: "assistant", content: "par", partial: true, run_id: "r9" },
  ], [{ run_id: "r9", status: "running", message_id: "u1" }]));
  assert.equal(change.reset, true);
  assert.deepEqual([...state.messages.keys()], ["u1", "a9"]);
  assert.equal(state.commandIds.has("c0"), false);
  assert.equal(state.lastSeq, 10);
  assert.equal(state.isStreaming(state.messages.get("a9")), true);
  assert.equal(state.activeRunId(), "r9");
  assert.equal(state.apply(ev(10, "text.delta", { message_id: "a9", delta: "X" })).dropped, 1);
  state.apply(ev(11, "text.delta", { message_id: "a9", delta: "tial" }, "r9"));
  assert.equal(state.messages.get("a9").content, "partial");
});

test("deltas fold into one message, then the full content replaces them", () => {
  const state = attached();
  state.apply(ev(1, "message.user", { message_id: "u1", content: "hi", command_id: "c1" }, null));
  state.apply(ev(2, "run.started", { run_id: "r1", message_id: "u1", attempt: 1 }));
  state.apply(delta(3, "Hel"));
  state.apply(delta(4, "lo wrld"));
  const a1 = state.messages.get("a1");
  assert.deepEqual([a1.role, a1.content, a1.partial, a1.runId], ["assistant", "Hello wrld", true, "r1"]);
  assert.equal(state.isStreaming(a1), true);
  state.apply(ev(5, "message.assistant", { message_id: "a1", content: "Hello world" }));
  assert.deepEqual([a1.content, a1.partial], ["Hello world", false]);
  state.apply(ev(6, "run.completed", {}));
  assert.deepEqual([...state.messages.keys()], ["u1", "a1"]);
  assert.equal(state.commandIds.has("c1"), true);
  assert.equal(state.runSummary().run.status, "completed");
  assert.equal(state.activeRunId(), null);
});

test("run states: failure is reported, queued runs are counted, waiting shows", () => {
  const state = attached();
  state.apply(ev(1, "run.started", { run_id: "r1", message_id: "u1", attempt: 1 }));
  state.apply(ev(2, "run.queued", { run_id: "r2", message_id: "u2", attempt: 1, position: 1 }, "r2"));
  assert.equal(state.runSummary().run.id, "r1");
  assert.equal(state.runSummary().queued, 1);
  state.apply(ev(3, "interrupt.requested", {
    interrupt_id: "i1", kind: "question", prompt: "Which?", on_timeout: "fail",
  }));
  assert.equal(state.runSummary().run.status, "waiting");
  assert.equal(state.runSummary().interrupt.prompt, "Which?");
  state.apply(ev(4, "interrupt.resolved", { interrupt_id: "i1", outcome: "answered", by: "local" }));
  assert.equal(state.runSummary().run.status, "running");
  const change = state.apply(ev(5, "run.failed", { error: { code: "x", message: "boom" }, retryable: true }));
  assert.deepEqual(change.failures, [{ runId: "r1", message: "boom", retryable: true }]);
  assert.equal(state.runSummary().run.id, "r2");
  assert.equal(state.activeRunId(), "r2");
  state.apply(ev(6, "run.cancelled", { by: "local" }, "r2"));
  assert.equal(state.runSummary().run.status, "cancelled");
  assert.equal(state.activeRunId(), null);
});

test("a partial message stops looking live once its run ends", () => {
  const state = attached();
  state.apply(ev(1, "run.started", { run_id: "r1", message_id: "u1", attempt: 1 }));
  state.apply(delta(2, "half"));
  const change = state.apply(ev(3, "run.failed", { error: { code: "x", message: "boom" }, retryable: false }));
  assert.deepEqual([...change.messages], ["a1"]);
  assert.equal(state.isStreaming(state.messages.get("a1")), false);
});

test("a welcome for another session clears the view", () => {
  const state = attached();
  state.apply(delta(1, "a"));
  const change = state.apply(welcome(false, { sessionId: "s2" }));
  assert.equal(change.reset, true);
  assert.equal(state.messages.size, 0);
  assert.equal(state.sessionId, "s2");
});

test("the outbox keeps unacked commands in order, bounded", () => {
  const outbox = new Outbox(2);
  assert.equal(outbox.add({ type: "message", id: "a", content: "1" }), true);
  assert.equal(outbox.add({ type: "cancel", id: "b" }), true);
  assert.equal(outbox.add({ type: "message", id: "c", content: "3" }), false);
  assert.deepEqual(outbox.pending().map((f) => f.id), ["a", "b"]);
  assert.equal(outbox.settle("a").content, "1");
  assert.equal(outbox.settle("a"), undefined);
  assert.deepEqual(outbox.pending().map((f) => f.id), ["b"]);
});

test("backoff is full jitter, base 250 ms, capped at 10 s", () => {
  assert.equal(backoffDelayMs(0, () => 0.999999), 249);
  assert.equal(backoffDelayMs(3, () => 0.5), 1000);
  assert.equal(backoffDelayMs(50, () => 0.5), 5000);
  assert.equal(backoffDelayMs(5, () => 0), 0);
});

test("terminal close codes stop; the others reconnect", () => {
  for (const code of [1008, 1009, 4400, 4401, 4403, 4404]) assert.equal(isTerminalClose(code), true);
  for (const code of [1000, 1001, 1006, 1011, 1012, 1013, 4008, 4408]) {
    assert.equal(isTerminalClose(code), false);
  }
});

test("command ids are unique and at most 64 characters", () => {
  const ids = new Set(Array.from({ length: 100 }, newCommandId));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.ok(id.length >= 1 && id.length <= 64);
});
