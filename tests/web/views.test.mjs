// Pure helpers behind the sessions list, file-edit diffs, tool cards and the run status.
import assert from "node:assert/strict";
import { test } from "node:test";

import { diffLines, diffStat } from "../../src/tether/web/diff.js";
import {
  badgeText, checkTitle, mergeSessions, patchSession, relativeTime, removeSession, statusText,
} from "../../src/tether/web/sessions.js";
import { RUN_TRANSITIONS, SessionState, canRetry, nextRunStatus } from "../../src/tether/web/state.js";

const EPOCH = "e1";

function attached() {
  const state = new SessionState("s1");
  state.apply({ type: "welcome", session_id: "s1", epoch: EPOCH, head_seq: 0, recovered: false });
  state.apply({ type: "snapshot", as_of_seq: 0, session: { title: "t" }, messages: [], runs: [], interrupts: [] });
  return state;
}

let seq = 0;
function ev(event, data, runId = "r1") {
  seq += 1;
  return { type: "event", seq, epoch: EPOCH, session_id: "s1", run_id: runId, event, data };
}

function fresh() {
  seq = 0;
  return attached();
}

test("sessions: most recent activity first, merged by id, removed, patched", () => {
  const a = { id: "a", title: "A", updated_at: "2026-01-01T10:00:00Z" };
  const b = { id: "b", title: "B", updated_at: "2026-01-01T11:00:00Z" };
  let list = mergeSessions([], [a, b]);
  assert.deepEqual(list.map((s) => s.id), ["b", "a"]);
  list = mergeSessions(list, [{ ...a, title: "A2", updated_at: "2026-01-01T12:00:00Z" }]);
  assert.deepEqual(list.map((s) => [s.id, s.title]), [["a", "A2"], ["b", "B"]]);
  list = patchSession(list, "b", { updated_at: "2026-01-01T13:00:00Z", status: "waiting" });
  assert.deepEqual(list.map((s) => s.id), ["b", "a"]);
  assert.equal(list[0].status, "waiting");
  assert.equal(patchSession(list, "zzz", { title: "x" }), list);
  assert.deepEqual(removeSession(list, "b").map((s) => s.id), ["a"]);
});

test("sessions: last activity, status and badge texts; titles are checked", () => {
  const now = Date.parse("2026-01-10T12:00:00Z");
  assert.equal(relativeTime("2026-01-10T11:59:30Z", now), "just now");
  assert.equal(relativeTime("2026-01-10T11:55:00Z", now), "5 min ago");
  assert.equal(relativeTime("2026-01-10T09:00:00Z", now), "3 h ago");
  assert.equal(relativeTime("2026-01-08T12:00:00Z", now), "2 d ago");
  assert.equal(relativeTime("2025-01-08T12:00:00Z", now), "2025-01-08");
  assert.equal(relativeTime("garbage", now), "");
  assert.equal(statusText("waiting"), "waiting for you");
  assert.equal(badgeText(0), "");
  assert.equal(badgeText(1), "1 request waiting");
  assert.equal(badgeText(3), "3 requests waiting");
  assert.deepEqual(checkTitle("  Groceries "), { title: "Groceries" });
  assert.ok(checkTitle("   ").error);
  assert.ok(checkTitle("x".repeat(201)).error);
});

test("diff lines are classified for styling and bounded", () => {
  const diff = "--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n keep\n-old <b>\n+new <script>\n";
  const lines = diffLines(diff);
  assert.deepEqual(lines.map((l) => l.kind), ["meta", "meta", "hunk", "ctx", "del", "add"]);
  assert.equal(lines[5].text, "+new <script>"); // text, shown as text
  assert.deepEqual(diffStat(lines), { added: 1, removed: 1 });
  const long = diffLines(Array.from({ length: 10 }, (_, i) => `+${i}`).join("\n"), 4);
  assert.equal(long.length, 5);
  assert.deepEqual(long.at(-1), { kind: "more", text: "… 6 more lines" });
});

test("an approval's details (a file edit's path and diff) are kept on the interrupt", () => {
  const state = fresh();
  state.apply(ev("run.started", { run_id: "r1", message_id: "u1", attempt: 1 }));
  state.apply(ev("interrupt.requested", {
    interrupt_id: "i1", kind: "approval", tool: "write_file", args: { path: "a.py" },
    prompt: "Write a.py?", on_timeout: "deny", details: { path: "a.py", diff: "+x\n" },
  }));
  assert.deepEqual(state.interrupts.get("i1").details, { path: "a.py", diff: "+x\n" });
  state.apply(ev("interrupt.requested", {
    interrupt_id: "i2", kind: "approval", tool: "demo_note", prompt: "?", on_timeout: "deny",
  }));
  assert.equal(state.interrupts.get("i2").details, null);
});

test("tool calls become cards: started, then finished with output or error", () => {
  const state = fresh();
  state.apply(ev("run.started", { run_id: "r1", message_id: "u1", attempt: 1 }));
  let change = state.apply(ev("tool.started", { call_id: "c1", tool: "read_file", args: { path: "a" } }));
  assert.deepEqual([...change.tools], ["c1"]);
  assert.equal(state.tools.get("c1").status, "running");
  state.apply(ev("tool.finished", { call_id: "c1", tool: "read_file", ok: true, output: "text" }));
  assert.deepEqual(
    (({ status, output, args }) => ({ status, output, args }))(state.tools.get("c1")),
    { status: "ok", output: "text", args: { path: "a" } },
  );
  state.apply(ev("tool.started", { call_id: "c2", tool: "write_file", args: {} }));
  change = state.apply(ev("tool.finished", { call_id: "c2", ok: false, error: "conflict" }));
  assert.deepEqual([...change.tools], ["c2"]);
  assert.equal(state.tools.get("c2").status, "error");
  assert.equal(state.tools.get("c2").error, "conflict");
});

test("progress shows on the running run and goes when it ends", () => {
  const state = fresh();
  state.apply(ev("run.started", { run_id: "r1", message_id: "u1", attempt: 1 }));
  const change = state.apply(ev("progress", { label: "indexing", done: 3, total: 10 }));
  assert.equal(change.runs, true);
  assert.deepEqual(state.runs.get("r1").progress, { label: "indexing", done: 3, total: 10 });
  state.apply(ev("run.completed", {}));
  assert.equal(state.runs.get("r1").progress, null);
});

test("run status is one state machine: impossible steps are ignored", () => {
  assert.equal(nextRunStatus(null, "waiting"), "waiting"); // first seen mid-way
  assert.equal(nextRunStatus("queued", "running"), "running");
  assert.equal(nextRunStatus("running", "waiting"), "waiting");
  assert.equal(nextRunStatus("waiting", "running"), "running");
  assert.equal(nextRunStatus("completed", "running"), "completed");
  assert.equal(nextRunStatus("cancelled", "waiting"), "cancelled");
  assert.equal(nextRunStatus("failed", "running"), "running"); // a retry
  assert.deepEqual(RUN_TRANSITIONS.completed, []);
  const state = fresh();
  state.apply(ev("run.started", { run_id: "r1", message_id: "u1", attempt: 1 }));
  state.apply(ev("run.completed", {}));
  state.apply(ev("interrupt.requested", { interrupt_id: "i9", kind: "question", prompt: "?", on_timeout: "fail" }));
  assert.equal(state.runs.get("r1").status, "completed");
});

test("retry: offered for a retryable failure, a cancel or an interruption of the latest run", () => {
  const state = fresh();
  assert.equal(state.retryRunId(), null);
  state.apply(ev("run.started", { run_id: "r1", message_id: "u1", attempt: 1 }));
  state.apply(ev("run.failed", { error: { code: "x", message: "boom" }, retryable: false }));
  assert.equal(state.retryRunId(), null);
  state.apply(ev("run.started", { run_id: "r2", message_id: "u2", attempt: 1 }, "r2"));
  state.apply(ev("run.failed", { error: { code: "x", message: "boom" }, retryable: true }, "r2"));
  assert.equal(state.retryRunId(), "r2");
  state.apply(ev("run.started", { run_id: "r2", message_id: "u2", attempt: 2 }, "r2"));
  assert.equal(state.retryRunId(), null);
  assert.equal(state.runs.get("r2").attempt, 2);
  assert.equal(canRetry({ status: "cancelled" }), true);
  assert.equal(canRetry({ status: "interrupted" }), true);
  assert.equal(canRetry({ status: "completed" }), false);
});

test("a row is redrawn only when what it shows changes, or its activity time is stale", async () => {
  const { rowChanged } = await import("../../src/tether/web/sessions.js");
  const now = Date.parse("2026-01-01T12:00:00Z");
  const entry = { id: "a", title: "t", status: "running", pending_interrupts: 0, version: 2,
    updated_at: "2026-01-01T11:59:50Z" };
  const same = { status: "running", pending_interrupts: 0, updated_at: "2026-01-01T12:00:00Z" };
  assert.equal(rowChanged(entry, same, now), false, "a text delta changes nothing shown");
  assert.equal(rowChanged(entry, { ...same, status: "waiting" }, now), true);
  assert.equal(rowChanged(entry, { ...same, pending_interrupts: 1 }, now), true);
  assert.equal(rowChanged(entry, { ...same, title: "new" }, now), true);
  assert.equal(rowChanged({ ...entry, updated_at: "2026-01-01T11:58:00Z" }, same, now), true);
});
