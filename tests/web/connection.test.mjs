// The page's socket: hello first, reconnect with backoff, commands re-sent with the same id
// until acked, and terminal close codes stop it. Driven with a fake WebSocket and fake timers.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Connection } from "../../src/tether/web/connection.js";
import {
  FrameBatcher, Outbox, afterClose, backoffDelayMs, connectionText,
} from "../../src/tether/web/net.js";

class FakeSocket {
  static all = [];

  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = null;
    FakeSocket.all.push(this);
  }

  send(text) { this.sent.push(JSON.parse(text)); }
  close(code) { this.closed = code; }
  // What the server does:
  open() { this.onopen?.(); }
  frame(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
  drop(code = 1006) { this.onclose?.({ code }); }
}

function harness({ online = true } = {}) {
  FakeSocket.all = [];
  const timers = [];
  const env = {
    WebSocket: FakeSocket,
    navigator: { onLine: online },
    Date: { now: () => 1_000 },
    setTimeout: (fn, ms) => timers.push({ fn, ms }) && timers.length,
    clearTimeout: () => {},
  };
  const seen = { frames: [], states: [] };
  const outbox = new Outbox();
  const conn = new Connection("ws://x/v1/ws", {
    hello: () => ({ type: "hello", session_id: "s1" }),
    onFrame: (frame, sent) => seen.frames.push({ frame, sent }),
    onState: (kind, detail) => seen.states.push([kind, detail]),
  }, outbox, env);
  const last = () => FakeSocket.all.at(-1);
  const attach = () => { last().open(); last().frame({ type: "welcome", session_id: "s1" }); };
  return { conn, env, timers, seen, outbox, last, attach };
}

test("hello is the first frame; connected on welcome", () => {
  const h = harness();
  h.conn.start();
  h.attach();
  assert.deepEqual(h.last().sent, [{ type: "hello", session_id: "s1" }]);
  assert.deepEqual(h.seen.states.map(([k]) => k), ["connecting", "connected"]);
});

test("a command typed while disconnected goes out once attached, then again with the same id after a drop, until acked", () => {
  const h = harness();
  h.conn.start();
  const cmd = { type: "message", id: "c-1", content: "hi" };
  assert.equal(h.conn.command(cmd), true);
  assert.deepEqual(h.last().sent, []); // not attached: kept, not sent
  h.attach();
  assert.deepEqual(h.last().sent.map((f) => f.id ?? f.type), ["hello", "c-1"]);
  h.last().drop(1006);
  assert.equal(h.seen.states.at(-1)[0], "reconnecting");
  assert.equal(h.seen.states.at(-1)[1].retryAtMs, 1_000 + h.timers.at(-1).ms);
  h.timers.at(-1).fn();
  h.attach();
  assert.deepEqual(h.last().sent, [{ type: "hello", session_id: "s1" }, cmd]); // same id
  h.last().frame({ type: "ack", id: "c-1", duplicate: true });
  assert.deepEqual(h.seen.frames.at(-1).sent, cmd);
  assert.equal(h.outbox.size, 0);
  h.last().drop(1012);
  h.timers.at(-1).fn();
  h.attach();
  assert.deepEqual(h.last().sent, [{ type: "hello", session_id: "s1" }]); // acked: not again
});

test("an error naming a command settles it and hands it back", () => {
  const h = harness();
  h.conn.start();
  h.attach();
  h.conn.command({ type: "message", id: "c-9", content: "x" });
  h.last().frame({ type: "error", id: "c-9", code: "busy", message: "busy" });
  assert.equal(h.seen.frames.at(-1).sent.content, "x");
  assert.equal(h.outbox.size, 0);
});

for (const code of [4401, 4403, 4404, 4400, 1008, 1009]) {
  test(`close ${code} stops: a clear state and no reconnect`, () => {
    const h = harness();
    h.conn.start();
    h.attach();
    h.last().drop(code);
    assert.deepEqual(h.seen.states.at(-1), ["closed", { code }]);
    assert.equal(h.timers.length, 0);
    assert.equal(FakeSocket.all.length, 1);
  });
}

test("the backoff grows with each failed attempt and resets after a welcome", () => {
  const h = harness();
  const ceilings = [];
  const random = Math.random;
  Math.random = () => 0.999999;
  try {
    h.conn.start();
    for (let i = 0; i < 4; i++) {
      h.last().drop(1006);
      ceilings.push(h.timers.at(-1).ms);
      h.timers.at(-1).fn();
    }
    h.attach();
    h.last().drop(1011);
    ceilings.push(h.timers.at(-1).ms);
  } finally {
    Math.random = random;
  }
  assert.deepEqual(ceilings, [249, 499, 999, 1999, 249]);
});

test("offline: no socket until the browser is online again", () => {
  const h = harness({ online: false });
  h.conn.start();
  assert.equal(FakeSocket.all.length, 0);
  assert.equal(h.seen.states.at(-1)[0], "offline");
  h.env.navigator.onLine = true;
  h.conn.online();
  assert.equal(FakeSocket.all.length, 1);
});

test("frames of a replaced socket are ignored", () => {
  const h = harness();
  h.conn.start();
  const old = h.last();
  h.conn.start(); // e.g. another session was opened
  old.frame({ type: "welcome", session_id: "s1" });
  assert.equal(h.seen.frames.length, 0);
  assert.equal(old.closed, 1000);
});

test("afterClose: terminal codes stop, offline waits, others retry with full jitter", () => {
  assert.deepEqual(afterClose(4404, 3), { action: "stop" });
  assert.deepEqual(afterClose(1006, 0, false), { action: "offline" });
  assert.deepEqual(afterClose(1006, 2, true, () => 0.5), { action: "retry", delayMs: 500 });
  assert.equal(backoffDelayMs(50, () => 0.999999), 9_999); // capped at 10 s
  assert.equal(backoffDelayMs(0, () => 0), 0); // full jitter reaches 0
});

test("the connection line counts down the reconnect", () => {
  assert.equal(connectionText("reconnecting", 2_100), "reconnecting in 3s");
  assert.equal(connectionText("reconnecting", 0), "reconnecting");
  assert.equal(connectionText("offline"), "offline");
});

test("a burst of changes is drawn once per frame, merged", () => {
  const ticks = [];
  const flushed = [];
  const batcher = new FrameBatcher((fn) => ticks.push(fn), (batch) => flushed.push(batch));
  for (let i = 0; i < 100; i++) batcher.add({ messages: ["a1"] });
  batcher.add({ interrupts: ["i1"], tools: ["c1"] });
  assert.equal(ticks.length, 1);
  assert.equal(flushed.length, 0);
  ticks[0]();
  assert.equal(flushed.length, 1);
  assert.deepEqual([...flushed[0].messages], ["a1"]);
  assert.deepEqual([...flushed[0].interrupts], ["i1"]);
  assert.deepEqual([...flushed[0].tools], ["c1"]);
  assert.equal(flushed[0].reset, false);
  batcher.add({ reset: true });
  assert.equal(ticks.length, 2);
  ticks[1]();
  assert.equal(flushed[1].reset, true);
});
