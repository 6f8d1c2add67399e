// Pure state logic of the browser page: run with `node --test tests/web/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Outbox, SessionState, backoffDelayMs, formatRemaining, isAnswering, isTerminalClose,
  newCommandId, outcomeText, respondFrame,
} from "../../src/tether/web/state.js";

const EPOCH = "e1";

function welcome(recovered, { sessionId = "s1", epoch = EPOCH } = {}) {
  return {
    type: "welcome", session_id: sessionId, epoch, head_seq: 0, recovered,
    user: "local", server_id: "srv", limits: { max_message_chars: 100 },
  };
}

function snapshot(asOfSeq, messages = [], runs = [], interrupts = []) {
  return {
    type: "snapshot", as_of_seq: asOfSeq, session: { title: "t" }, messages, runs, interrupts,
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
  assert.equal(state.runSummary().run.status, "waiting"); // until the run says it resumed
  assert.equal(state.runSummary().interrupt, null);
  state.apply(ev(5, "run.started", { run_id: "r1", message_id: "u1", attempt: 1, resumed: true }));
  assert.equal(state.runSummary().run.status, "running");
  const change = state.apply(ev(6, "run.failed", { error: { code: "x", message: "boom" }, retryable: true }));
  assert.deepEqual(change.failures, [{ runId: "r1", message: "boom", retryable: true }]);
  assert.equal(state.runSummary().run.id, "r2");
  assert.equal(state.activeRunId(), "r2");
  state.apply(ev(7, "run.cancelled", { by: "local" }, "r2"));
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

// ---------------------------------------------------------------- interrupts

const APPROVAL = {
  interrupt_id: "i1", kind: "approval", call_id: "c1", tool: "demo_note", args: { text: "hi" },
  prompt: "Run demo_note?", expires_at: "2030-01-01T00:00:00+00:00", on_timeout: "deny",
};
const QUESTION = {
  interrupt_id: "i2", kind: "question", prompt: "Which colour?", choices: ["red", "green", "blue"],
  on_timeout: "fail",
};
const FREE = { interrupt_id: "i3", kind: "question", prompt: "Why?", on_timeout: "fail" };

/** Attached, with run r1 started by user message u1 and an assistant message a1 of r1. */
function running() {
  const state = attached();
  state.apply(ev(1, "message.user", { message_id: "u1", content: "/approve", command_id: "c" }, null));
  state.apply(ev(2, "run.started", { run_id: "r1", message_id: "u1", attempt: 1 }));
  state.apply(delta(3, "Let me"));
  return state;
}

test("interrupt.requested: pending, the run waits, and the card follows the run's message", () => {
  const state = running();
  const change = state.apply(ev(4, "interrupt.requested", APPROVAL));
  assert.deepEqual([...change.interrupts], ["i1"]);
  assert.equal(change.runs, true);
  const i = state.interrupts.get("i1");
  assert.deepEqual(
    [i.status, i.kind, i.tool, i.args, i.prompt, i.runId, i.callId, i.onTimeout, i.after],
    ["pending", "approval", "demo_note", { text: "hi" }, "Run demo_note?", "r1", "c1", "deny", "a1"],
  );
  assert.equal(i.expiresAt, Date.UTC(2030, 0, 1));
  assert.deepEqual(state.pendingInterrupts().map((x) => x.id), ["i1"]);
  assert.equal(state.runSummary().run.status, "waiting");
  assert.equal(state.runSummary().interrupt.id, "i1");
  assert.equal(state.activeRunId(), "r1");
});

test("interrupt.resolved: the outcome is recorded and it is no longer pending", () => {
  const state = running();
  state.apply(ev(4, "interrupt.requested", APPROVAL));
  state.apply(ev(5, "interrupt.requested", QUESTION));
  let change = state.apply(ev(6, "interrupt.resolved", {
    interrupt_id: "i1", outcome: "denied", note: "not now", by: "bob",
  }));
  assert.deepEqual([...change.interrupts], ["i1"]);
  const i1 = state.interrupts.get("i1");
  assert.deepEqual([i1.status, i1.note, i1.by], ["denied", "not now", "bob"]);
  assert.equal(outcomeText(i1), "Denied");
  assert.deepEqual(state.pendingInterrupts().map((x) => x.id), ["i2"]);
  assert.equal(state.runSummary().interrupt.id, "i2");
  change = state.apply(ev(7, "interrupt.resolved", {
    interrupt_id: "i2", outcome: "answered", answer: "blue", by: "alice",
  }));
  assert.equal(outcomeText(state.interrupts.get("i2")), "Answered: blue");
  assert.deepEqual(state.pendingInterrupts(), []);
  assert.equal(state.runSummary().run.status, "waiting");
  state.apply(ev(8, "run.started", { run_id: "r1", message_id: "u1", attempt: 1, resumed: true }));
  assert.equal(state.runSummary().run.status, "running");
  assert.equal(state.interrupts.size, 2); // resolved cards stay, with their outcome
});

test("every outcome has its card text", () => {
  const texts = ["approved", "denied", "expired", "cancelled"].map((status) => outcomeText({ status }));
  assert.deepEqual(texts, ["Approved", "Denied", "Expired", "Cancelled"]);
  assert.equal(outcomeText({ status: "answered", answer: "blue" }), "Answered: blue");
});

test("a snapshot replaces the pending interrupts and keeps resolved history", () => {
  const state = running();
  state.apply(ev(4, "interrupt.requested", APPROVAL));
  state.apply(ev(5, "interrupt.resolved", { interrupt_id: "i1", outcome: "approved", by: "me" }));
  state.apply(ev(6, "interrupt.requested", QUESTION));
  const change = state.apply(snapshot(20, [
    { message_id: "u1", role: "user", content: "/approve" },
    { message_id: "a1", role: "assistant", content: "Let me", run_id: "r1" },
  ], [{ run_id: "r1", status: "waiting", message_id: "u1" }], [
    { ...FREE, run_id: "r1", call_id: null, tool: null, args: null, choices: null,
      expires_at: null, status: "pending" },
  ]));
  assert.equal(change.reset, true);
  assert.deepEqual(state.pendingInterrupts().map((i) => i.id), ["i3"]); // i2 is gone
  assert.equal(state.interrupts.has("i2"), false);
  assert.equal(state.interrupts.get("i1").status, "approved");
  const i3 = state.interrupts.get("i3");
  assert.deepEqual([i3.kind, i3.choices, i3.expiresAt, i3.runId, i3.after], ["question", null, null, "r1", "a1"]);
  assert.equal(state.runSummary().interrupt.id, "i3");
  // A reload: a fresh state sees only what the snapshot holds.
  const fresh = new SessionState("s1");
  fresh.apply(welcome(false));
  fresh.apply(snapshot(3, [], [{ run_id: "r1", status: "waiting" }], [
    { ...QUESTION, run_id: "r1", status: "pending" },
  ]));
  assert.deepEqual(fresh.pendingInterrupts().map((i) => i.id), ["i2"]);
  assert.deepEqual(fresh.interrupts.get("i2").choices, ["red", "green", "blue"]);
  assert.equal(fresh.runSummary().run.status, "waiting");
});

test("duplicate and old interrupt events are ignored by seq", () => {
  const state = running();
  state.apply(ev(4, "interrupt.requested", APPROVAL));
  state.apply(ev(5, "interrupt.resolved", { interrupt_id: "i1", outcome: "approved", by: "me" }));
  // A replayed request must not reopen the card, nor a replayed resolve change it.
  let change = state.apply(ev(4, "interrupt.requested", APPROVAL));
  assert.deepEqual([change.dropped, change.interrupts.size], [1, 0]);
  change = state.apply({ type: "events", events: [
    ev(4, "interrupt.requested", APPROVAL),
    ev(5, "interrupt.resolved", { interrupt_id: "i1", outcome: "denied", by: "x" }),
  ] });
  assert.equal(change.dropped, 2);
  assert.equal(state.interrupts.get("i1").status, "approved");
  assert.deepEqual(state.pendingInterrupts(), []);
  // Before the snapshot nothing applies; a resolve of an unknown interrupt is a no-op.
  const early = new SessionState("s1");
  early.apply(welcome(false));
  assert.equal(early.apply(ev(1, "interrupt.requested", APPROVAL)).dropped, 1);
  assert.equal(early.interrupts.size, 0);
  const late = attached(9);
  change = late.apply(ev(10, "interrupt.resolved", { interrupt_id: "gone", outcome: "expired", by: "timeout" }));
  assert.deepEqual([change.applied, change.interrupts.size, late.interrupts.size], [1, 0, 0]);
});

test("our ack shows the outcome at once; a conflict waits for interrupt.resolved", () => {
  const state = running();
  state.apply(ev(4, "interrupt.requested", APPROVAL));
  state.apply(ev(5, "interrupt.requested", QUESTION));
  const { frame } = respondFrame(state.interrupts.get("i2"), { answer: "blue" }, "cmd1");
  let change = state.acknowledge(frame, { interrupt_id: "i2", outcome: "answered", run_id: "r1" });
  assert.deepEqual([...change.interrupts], ["i2"]);
  assert.equal(outcomeText(state.interrupts.get("i2")), "Answered: blue");
  change = state.conflicted("i1");
  assert.equal(state.interrupts.get("i1").settling, true);
  assert.equal(state.interrupts.get("i1").status, "pending");
  state.apply(ev(6, "interrupt.resolved", { interrupt_id: "i1", outcome: "approved", by: "other" }));
  assert.deepEqual([state.interrupts.get("i1").status, state.interrupts.get("i1").settling], ["approved", false]);
  // The echo of our own answer changes nothing visible.
  state.apply(ev(7, "interrupt.resolved", { interrupt_id: "i2", outcome: "answered", answer: "blue", by: "me" }));
  assert.equal(outcomeText(state.interrupts.get("i2")), "Answered: blue");
  // Acks for resolved or unknown interrupts are ignored.
  assert.equal(state.acknowledge(frame, { outcome: "denied" }).interrupts.size, 0);
  assert.equal(state.acknowledge({ interrupt_id: "nope" }, { outcome: "denied" }).interrupts.size, 0);
});

test("respond frames: approvals take approved (+ note), questions an allowed answer", () => {
  const state = running();
  state.apply(ev(4, "interrupt.requested", APPROVAL));
  state.apply(ev(5, "interrupt.requested", QUESTION));
  state.apply(ev(6, "interrupt.requested", FREE));
  const [i1, i2, i3] = ["i1", "i2", "i3"].map((id) => state.interrupts.get(id));
  assert.deepEqual(respondFrame(i1, { approved: true, note: "  " }, "a").frame,
    { type: "respond", id: "a", interrupt_id: "i1", approved: true });
  assert.deepEqual(respondFrame(i1, { approved: false, note: " no " }, "b").frame,
    { type: "respond", id: "b", interrupt_id: "i1", approved: false, note: "no" });
  assert.ok(respondFrame(i1, { answer: "yes" }).error);
  assert.ok(respondFrame(i1, { approved: true, note: "x".repeat(10_001) }).error);
  assert.deepEqual(respondFrame(i2, { answer: "blue" }, "c").frame,
    { type: "respond", id: "c", interrupt_id: "i2", answer: "blue" });
  assert.ok(respondFrame(i2, { answer: "purple" }).error);
  assert.ok(respondFrame(i2, { approved: true }).error);
  assert.deepEqual(respondFrame(i3, { answer: " because " }, "d").frame,
    { type: "respond", id: "d", interrupt_id: "i3", answer: "because" });
  assert.ok(respondFrame(i3, { answer: "   " }).error);
  state.apply(ev(7, "interrupt.resolved", { interrupt_id: "i3", outcome: "expired", by: "timeout" }));
  assert.ok(respondFrame(i3, { answer: "late" }).error);
  assert.ok(respondFrame(undefined, { answer: "x" }).error);
  assert.ok(respondFrame(i1, { approved: true }).frame.id.length > 0);
});

test("an answer is in flight while its respond waits in the outbox", () => {
  const outbox = new Outbox();
  outbox.add({ type: "message", id: "m", content: "x" });
  outbox.add({ type: "respond", id: "r", interrupt_id: "i1", approved: true });
  assert.equal(isAnswering(outbox, "i1"), true);
  assert.equal(isAnswering(outbox, "i2"), false);
  outbox.settle("r");
  assert.equal(isAnswering(outbox, "i1"), false);
});

test("countdowns read m:ss, h:mm:ss past an hour, and stop at 0:00", () => {
  assert.equal(formatRemaining(65_000), "1:05");
  assert.equal(formatRemaining(59_001), "1:00");
  assert.equal(formatRemaining(3_723_000), "1:02:03");
  assert.equal(formatRemaining(0), "0:00");
  assert.equal(formatRemaining(-5000), "0:00");
});

test("a snapshot's tool calls become cards placed after their message", () => {
  const state = attached();
  const frame = snapshot(6, [
    { message_id: "u1", role: "user", content: "hi" },
    { message_id: "a1", role: "assistant", content: "ok", run_id: "r1" },
  ]);
  frame.tools = [
    { call_id: "c1", run_id: "r1", tool: "read_file", args: { path: "a" }, status: "ok",
      output: "x", after_message_id: "u1" },
    { call_id: "c2", run_id: "r1", tool: "edit_file", args: {}, status: "bogus",
      after_message_id: null },
  ];
  state.apply(frame);
  const c1 = state.tools.get("c1");
  assert.deepEqual([c1.tool, c1.status, c1.output, c1.after], ["read_file", "ok", "x", "u1"]);
  assert.equal(state.tools.get("c2").status, "running");
  assert.equal(state.tools.get("c2").after, null);
  state.apply(ev(7, "tool.finished", { call_id: "c2", tool: "edit_file", ok: true }));
  assert.equal(state.tools.get("c2").status, "ok");
});

test("a snapshot's user messages tell which commands are already logged", () => {
  const state = attached();
  state.apply(snapshot(3, [{ message_id: "u1", role: "user", content: "hi", command_id: "c7" }]));
  assert.equal(state.commandIds.has("c7"), true);
});
