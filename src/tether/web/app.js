// The minimal tether page: one WebSocket (Connection), the DOM (View), and the wiring.
// Protocol state lives in state.js, which knows nothing of sockets or the DOM.
import {
  Outbox, SessionState, backoffDelayMs, formatRemaining, isAnswering, isTerminalClose,
  newCommandId, outcomeText, respondFrame,
} from "./state.js";

const TOKEN_KEY = "tether.token";
const CLOSE_MESSAGES = {
  1008: "Closed by the server: too many bad frames.",
  1009: "Closed by the server: a frame was too large.",
  4400: "The server rejected the handshake.",
  4401: "Not authenticated: enter an access token.",
  4403: "This session belongs to another user.",
  4404: "Session not found. Start a new session.",
};
const RUN_TEXT = {
  queued: "Run queued",
  running: "Running…",
  waiting: "Waiting for a human answer",
  completed: "Run completed",
  cancelled: "Run cancelled",
  interrupted: "Run interrupted",
};
const ON_TIMEOUT_TEXT = {
  deny: "then it is denied",
  fail: "then the run fails",
};

/**
 * One WebSocket at a time. Sends `hello` first, reports "connected" on `welcome`, and after
 * any non-terminal close reconnects with full-jitter backoff until `stop()`. Events of a
 * socket that was replaced or dropped are ignored.
 */
class Connection {
  #ws = null;
  #ready = false;
  #running = false;
  #attempt = 0;
  #timer = 0;

  constructor(url, hooks) {
    this.url = url;
    this.hooks = hooks; // {hello(): frame, onFrame(frame), onState(state, closeCode?)}
  }

  start() {
    this.stop();
    this.#running = true;
    this.hooks.onState("connecting");
    this.#open();
  }

  stop() {
    this.#running = false;
    this.#drop(1000, "bye");
  }

  /** Drop this socket and reconnect (resuming from the cursor), e.g. after a seq gap. */
  resync() {
    this.#drop(4000, "resync");
    this.#retry();
  }

  /** Reconnect at once when the browser comes back online. */
  online() {
    if (this.#running && this.#ws === null) {
      clearTimeout(this.#timer);
      this.#open();
    }
  }

  /** Send now if a session is attached; false otherwise (the caller keeps the frame). */
  send(frame) {
    if (!this.#ready) return false;
    this.#ws.send(JSON.stringify(frame));
    return true;
  }

  #open() {
    if (!navigator.onLine) return this.hooks.onState("offline"); // `online()` resumes
    const ws = new WebSocket(this.url);
    this.#ws = ws;
    ws.onopen = () => ws === this.#ws && ws.send(JSON.stringify(this.hooks.hello()));
    ws.onmessage = (e) => ws === this.#ws && this.#receive(e.data);
    ws.onclose = (e) => ws === this.#ws && this.#closed(e.code);
  }

  #receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return; // not ours to fix; the log is re-read on the next gap
    }
    if (frame.type === "welcome") {
      this.#ready = true;
      this.#attempt = 0;
      this.hooks.onState("connected");
    }
    this.hooks.onFrame(frame);
  }

  #closed(code) {
    this.#ws = null;
    this.#ready = false;
    if (isTerminalClose(code)) {
      this.#running = false;
      this.hooks.onState("closed", code);
    } else {
      this.#retry();
    }
  }

  #retry() {
    if (!this.#running) return;
    clearTimeout(this.#timer);
    this.hooks.onState(navigator.onLine ? "reconnecting" : "offline");
    this.#timer = setTimeout(() => this.#open(), backoffDelayMs(this.#attempt++));
  }

  #drop(code, reason) {
    clearTimeout(this.#timer);
    const ws = this.#ws;
    this.#ws = null;
    this.#ready = false;
    if (ws) ws.close(code, reason);
  }
}

/** The DOM. Model text only ever goes through textContent; redraws at most once a frame. */
class View {
  #messageEls = new Map();
  #interruptEls = new Map(); // interrupt_id -> card element
  #dirty = new Set();
  #dirtyInterrupts = new Set();
  #full = true;
  #frame = 0;
  #ticker = 0;
  #cardCount = 0;

  constructor(doc, getState, getPending, isAnswering) {
    const $ = (id) => doc.getElementById(id);
    this.getState = getState;
    this.getPending = getPending; // () => message frames not yet echoed by the server
    this.isAnswering = isAnswering; // (interruptId) => a respond for it awaits its ack
    this.status = $("status");
    this.sessionTitle = $("session-title");
    this.log = $("log"); // the scrolling region
    this.messages = $("messages");
    this.pending = $("pending");
    this.runStatus = $("run-status");
    this.notice = $("notice");
    this.noticeDismiss = $("notice-dismiss");
    this.composerForm = $("composer-form");
    this.composer = $("composer");
    this.cancel = $("cancel");
    this.newSession = $("new-session");
    this.tokenForm = $("token-form");
    this.token = $("token");
  }

  /** Queue a redraw of what `change` touched (or of everything). */
  queue(change = { reset: true, messages: [] }) {
    if (change.reset) this.#full = true;
    for (const id of change.messages ?? []) this.#dirty.add(id);
    for (const id of change.interrupts ?? []) this.#dirtyInterrupts.add(id);
    if (!this.#frame) this.#frame = requestAnimationFrame(() => this.#flush());
  }

  #flush() {
    this.#frame = 0;
    const state = this.getState();
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 48;
    if (this.#full) this.#rebuild(state);
    else {
      for (const id of this.#dirty) this.#drawMessage(state, state.messages.get(id));
      for (const id of this.#dirtyInterrupts) this.#drawInterrupt(state.interrupts.get(id));
    }
    this.#full = false;
    this.#dirty.clear();
    this.#dirtyInterrupts.clear();
    this.#drawBusy(state);
    this.#tick();
    this.#drawPending(state);
    this.#drawRun(state);
    this.sessionTitle.textContent = state.session?.title || "";
    if (atBottom) this.log.scrollTop = this.log.scrollHeight;
  }

  #rebuild(state) {
    this.messages.replaceChildren();
    this.#messageEls.clear();
    for (const m of state.messages.values()) this.#drawMessage(state, m);
    // Cards still known are reused (a half-typed answer survives a resync), then re-placed.
    for (const id of this.#interruptEls.keys()) {
      if (!state.interrupts.has(id)) this.#interruptEls.delete(id);
    }
    for (const i of state.interrupts.values()) this.#drawInterrupt(i, true);
  }

  /** Create, place (`place`: again) and update the card of one interrupt. */
  #drawInterrupt(i, place = false) {
    if (!i) return;
    let el = this.#interruptEls.get(i.id);
    if (!el) {
      el = this.#interruptCard(i);
      this.#interruptEls.set(i.id, el);
      place = true;
    }
    if (place) this.#placeCard(el, i.after);
    if (i.status !== "pending" && el.dataset.status !== i.status) this.#resolveCard(el, i);
  }

  /** A card goes right after its anchor message and the cards already following it. */
  #placeCard(el, afterId) {
    const anchor = afterId ? this.#messageEls.get(afterId) : null;
    if (afterId && !anchor) return this.messages.append(el);
    let ref = anchor ? anchor.nextElementSibling : this.messages.firstElementChild;
    while (ref && ref !== el && ref.dataset.interruptId) ref = ref.nextElementSibling;
    if (ref !== el) this.messages.insertBefore(el, ref);
  }

  #interruptCard(i) {
    const n = ++this.#cardCount;
    const el = document.createElement("section");
    el.className = "interrupt";
    el.dataset.interruptId = i.id;
    el.dataset.kind = i.kind;
    el.dataset.status = "pending";
    el.tabIndex = -1; // focus lands here when its controls go away under the keyboard
    el.setAttribute("aria-labelledby", `interrupt-${n}-prompt`);
    const who = textEl("p", "who", i.kind === "approval" ? "Approval needed" : "Question");
    const prompt = textEl("p", "prompt", i.prompt);
    prompt.id = `interrupt-${n}-prompt`;
    el.append(who, prompt);
    if (i.kind === "approval") {
      const tool = textEl("p", "tool", "Tool: ");
      tool.append(textEl("code", "", i.tool ?? "(unknown)"));
      el.append(tool);
      if (i.args !== null && i.args !== undefined) {
        const args = textEl("pre", "args", JSON.stringify(i.args, null, 2));
        args.setAttribute("aria-label", "Arguments");
        args.tabIndex = 0; // scrollable by keyboard when long
        el.append(args);
      }
    }
    if (i.expiresAt !== null) {
      const deadline = textEl("p", "deadline", "");
      deadline.dataset.expiresAt = String(i.expiresAt);
      const time = document.createElement("time");
      time.dateTime = new Date(i.expiresAt).toISOString();
      time.title = new Date(i.expiresAt).toLocaleString();
      deadline.append("Answer within ", time);
      const after = ON_TIMEOUT_TEXT[i.onTimeout];
      if (after) deadline.append(`, ${after}`);
      deadline.append(".");
      el.append(deadline);
    }
    el.append(i.kind === "approval" ? approvalControls(n) : questionControls(i, n));
    const outcome = textEl("p", "outcome", "");
    outcome.setAttribute("aria-live", "polite");
    outcome.hidden = true;
    el.append(outcome);
    return el;
  }

  #resolveCard(el, i) {
    const hadFocus = el.contains(document.activeElement) && document.activeElement !== el;
    el.dataset.status = i.status;
    el.removeAttribute("aria-busy");
    el.querySelector(".controls")?.remove();
    el.querySelector(".deadline")?.remove();
    const outcome = el.querySelector(".outcome");
    outcome.textContent = outcomeText(i);
    const details = [];
    if (i.note) details.push(`Note: ${i.note}`);
    if (i.by) details.push(`by ${i.by}`);
    if (details.length) outcome.append(textEl("span", "detail", details.join(" · ")));
    outcome.hidden = false;
    if (hadFocus) el.focus();
  }

  /** Controls are disabled while our answer is in flight, or lost to someone else's. */
  #drawBusy(state) {
    for (const [id, el] of this.#interruptEls) {
      const i = state.interrupts.get(id);
      const controls = el.querySelector(".controls");
      if (!i || !controls) continue;
      const sending = this.isAnswering(id);
      const busy = sending || i.settling;
      if (controls.dataset.busy === String(busy) && !busy) continue;
      controls.dataset.busy = String(busy);
      // A disabled control drops focus to <body>: keep it on the card instead.
      if (busy && controls.contains(document.activeElement)) el.focus();
      for (const c of controls.querySelectorAll("button, input")) c.disabled = busy;
      el.setAttribute("aria-busy", String(busy));
      controls.querySelector(".busy").textContent = !busy ? ""
        : sending ? "Sending your answer…" : "Someone else answered first; updating…";
    }
  }

  /** Redraw the countdowns now, and every second while any is shown. */
  #tick() {
    const deadlines = this.messages.querySelectorAll(".interrupt .deadline");
    const now = Date.now();
    for (const d of deadlines) {
      const left = Number(d.dataset.expiresAt) - now;
      const time = d.querySelector("time");
      const text = left > 0 ? formatRemaining(left) : "0:00 (time is up)";
      if (time.textContent !== text) time.textContent = text;
      d.dataset.late = String(left <= 0);
    }
    if (deadlines.length && !this.#ticker) {
      this.#ticker = setInterval(() => this.#tick(), 1000);
    } else if (!deadlines.length && this.#ticker) {
      clearInterval(this.#ticker);
      this.#ticker = 0;
    }
  }

  #drawMessage(state, m) {
    if (!m) return;
    let el = this.#messageEls.get(m.id);
    if (!el) {
      el = messageElement(m.role);
      el.dataset.messageId = m.id;
      this.#messageEls.set(m.id, el);
      this.messages.append(el);
    }
    const text = el.lastElementChild;
    if (text.textContent !== m.content) text.textContent = m.content;
    const streaming = state.isStreaming(m);
    el.dataset.partial = String(m.partial);
    el.setAttribute("aria-busy", String(streaming));
  }

  #drawPending(state) {
    const items = this.getPending().filter((f) => !state.commandIds.has(f.id)).map((f) => {
      const el = messageElement("user", "li");
      delete el.dataset.role; // not a logged message yet
      el.dataset.pending = "true";
      el.dataset.commandId = f.id;
      el.lastElementChild.textContent = f.content;
      el.firstElementChild.textContent = "You (sending…)";
      return el;
    });
    this.pending.replaceChildren(...items);
    this.pending.hidden = items.length === 0;
  }

  #drawRun(state) {
    const { run, queued, interrupt } = state.runSummary();
    let text = run ? RUN_TEXT[run.status] ?? `Run ${run.status}` : "No run yet";
    if (run?.status === "failed") {
      text = `Run failed: ${run.error?.message ?? "unknown error"}`;
      if (run.retryable) text += " (retryable)";
    }
    if (interrupt?.prompt) text += `: ${interrupt.prompt}`;
    if (queued > 0) text += ` · ${queued} more queued`;
    this.runStatus.textContent = text;
    this.runStatus.dataset.state = run?.status ?? "idle";
    this.cancel.disabled = state.activeRunId() === null;
  }

  setStatus(kind, text = kind) {
    this.status.textContent = text;
    this.status.dataset.state = kind;
  }

  notify(text) {
    this.notice.textContent = text;
    this.noticeDismiss.hidden = !text;
  }

  /** Put a rejected message back in an empty composer so it is not lost. */
  restoreDraft(content) {
    if (!this.composer.value) this.composer.value = content;
  }

  showTokenForm(show) {
    this.tokenForm.hidden = !show;
    if (show) this.token.focus();
  }
}

function textEl(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  el.textContent = text;
  return el;
}

function controlsBox() {
  const box = document.createElement("div");
  box.className = "controls";
  return box;
}

function busyLine() {
  const busy = textEl("p", "busy", "");
  busy.setAttribute("role", "status");
  return busy;
}

function approvalControls(n) {
  const box = controlsBox();
  const field = document.createElement("div");
  field.className = "field";
  const label = textEl("label", "", "Note (optional)");
  label.htmlFor = `interrupt-${n}-note`;
  const note = document.createElement("input");
  note.id = label.htmlFor;
  note.type = "text";
  note.maxLength = 10_000;
  note.autocomplete = "off";
  note.dataset.field = "note";
  field.append(label, note);
  const buttons = document.createElement("div");
  buttons.className = "buttons";
  const approve = textEl("button", "approve", "Approve");
  approve.type = "button";
  approve.dataset.action = "approve";
  const deny = textEl("button", "deny", "Deny");
  deny.type = "button";
  deny.dataset.action = "deny";
  buttons.append(approve, deny);
  box.append(field, buttons, busyLine());
  return box;
}

function questionControls(i, n) {
  const box = controlsBox();
  if (i.choices) {
    const buttons = document.createElement("div");
    buttons.className = "buttons";
    buttons.setAttribute("role", "group");
    buttons.setAttribute("aria-labelledby", `interrupt-${n}-prompt`);
    for (const choice of i.choices) {
      const b = textEl("button", "choice", choice);
      b.type = "button";
      b.dataset.choice = choice;
      buttons.append(b);
    }
    box.append(buttons);
  } else {
    const form = document.createElement("form");
    form.className = "answer-form field";
    const label = textEl("label", "", "Your answer");
    label.htmlFor = `interrupt-${n}-answer`;
    const input = document.createElement("input");
    input.id = label.htmlFor;
    input.type = "text";
    input.required = true;
    input.autocomplete = "off";
    input.dataset.field = "answer";
    const submit = textEl("button", "", "Submit");
    submit.type = "submit";
    submit.dataset.action = "answer";
    form.append(label, input, submit);
    box.append(form);
  }
  box.append(busyLine());
  return box;
}

function messageElement(role, tag = "article") {
  const el = document.createElement(tag);
  el.className = `message ${role}`;
  el.dataset.role = role;
  const who = document.createElement("p");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Assistant";
  const text = document.createElement("div");
  text.className = "text";
  el.append(who, text);
  return el;
}

function sessionFromUrl() {
  return new URLSearchParams(location.hash.slice(1)).get("s") || null;
}

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return ""; // storage disabled: the token lives only in the input
  }
}

function storeToken(token) {
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // storage disabled: nothing to keep
  }
}

function socketUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/ws`;
}

/** Wires state, outbox, connection and view together. */
class Page {
  constructor(doc) {
    this.state = new SessionState(sessionFromUrl());
    this.outbox = new Outbox();
    this.token = storedToken();
    this.view = new View(doc, () => this.state, () => this.#pendingMessages(),
      (id) => isAnswering(this.outbox, id));
    this.conn = new Connection(socketUrl(), {
      hello: () => this.state.hello(this.token),
      onFrame: (frame) => this.#onFrame(frame),
      onState: (kind, code) => this.#onState(kind, code),
    });
  }

  start() {
    this.#bindEvents();
    this.view.queue();
    this.conn.start();
  }

  /** Switch to another session (null: create one); unacked commands of the old one go. */
  open(sessionId) {
    this.state = new SessionState(sessionId);
    this.outbox.clear();
    this.view.notify("");
    this.view.queue();
    this.conn.start();
  }

  #pendingMessages() {
    return this.outbox.pending().filter((f) => f.type === "message");
  }

  #onState(kind, code) {
    if (kind === "closed") {
      this.view.setStatus("closed", CLOSE_MESSAGES[code] ?? `Connection closed (${code}).`);
      this.view.showTokenForm(code === 4401);
    } else {
      this.view.setStatus(kind);
    }
  }

  #onFrame(frame) {
    if (frame.type === "ack") return this.#acked(frame);
    if (frame.type === "error") return this.#onError(frame);
    const change = this.state.apply(frame);
    this.view.queue(change);
    for (const f of change.failures) {
      this.view.notify(`Run failed: ${f.message}${f.retryable ? " (retryable)" : ""}`);
    }
    if (change.gap) return this.conn.resync();
    if (frame.type === "welcome") this.#attached();
  }

  #attached() {
    const url = `#s=${encodeURIComponent(this.state.sessionId)}`;
    if (location.hash !== url) history.replaceState(null, "", url);
    for (const frame of this.outbox.pending()) this.conn.send(frame);
  }

  #acked(frame) {
    const sent = this.#settled(frame.id);
    if (sent?.type === "respond") this.view.queue(this.state.acknowledge(sent, frame.result));
  }

  #settled(id) {
    const frame = this.outbox.settle(id);
    if (frame) this.view.queue({ reset: false, messages: [] });
    return frame;
  }

  #onError(frame) {
    const sent = frame.id ? this.#settled(frame.id) : undefined;
    if (sent?.type === "respond") {
      // Lost the race: interrupt.resolved (here or on its way) says how it ended.
      if (frame.code === "conflict") return this.view.queue(this.state.conflicted(sent.interrupt_id));
      return this.view.notify(`Your answer was not accepted: ${frame.message} (${frame.code})`);
    }
    this.view.notify(`${frame.message} (${frame.code})`);
    if (sent?.type === "message") this.view.restoreDraft(sent.content);
  }

  /** Queue a command until acked and send it now if attached; false when not accepted. */
  #command(frame) {
    if (!this.outbox.add(frame)) {
      this.view.notify("Too many unsent commands: wait for the connection to come back.");
      return false;
    }
    this.conn.send(frame); // else it goes out with the others once the session is attached
    this.view.queue({ reset: false, messages: [] });
    return true;
  }

  sendMessage() {
    const content = this.view.composer.value;
    if (!content.trim()) return;
    const maxChars = this.state.limits?.max_message_chars;
    if (maxChars && content.length > maxChars) {
      this.view.notify(`The message is too long (at most ${maxChars} characters).`);
      return;
    }
    if (this.#command({ type: "message", id: newCommandId(), content })) {
      this.view.composer.value = "";
    }
  }

  /** Answer an interrupt: reply is {approved, note} or {answer}. */
  respond(interruptId, reply) {
    if (isAnswering(this.outbox, interruptId)) return;
    const { frame, error } = respondFrame(this.state.interrupts.get(interruptId), reply);
    if (error) return this.view.notify(error);
    this.view.notify("");
    this.#command(frame);
  }

  #onCardClick(e) {
    const button = e.target.closest("button");
    const card = button?.closest("[data-interrupt-id]");
    if (!card || button.disabled) return;
    const id = card.dataset.interruptId;
    const note = () => card.querySelector('[data-field="note"]')?.value ?? "";
    if (button.dataset.action === "approve") this.respond(id, { approved: true, note: note() });
    else if (button.dataset.action === "deny") this.respond(id, { approved: false, note: note() });
    else if (button.dataset.choice !== undefined) this.respond(id, { answer: button.dataset.choice });
  }

  #onCardSubmit(e) {
    const card = e.target.closest("[data-interrupt-id]");
    if (!card) return;
    e.preventDefault();
    const input = card.querySelector('[data-field="answer"]');
    if (input && !input.disabled) this.respond(card.dataset.interruptId, { answer: input.value });
  }

  cancelRun() {
    const runId = this.state.activeRunId();
    if (runId) this.#command({ type: "cancel", id: newCommandId(), run_id: runId });
  }

  #bindEvents() {
    const v = this.view;
    v.composerForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.sendMessage();
    });
    v.composer.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        v.composerForm.requestSubmit();
      }
    });
    v.cancel.addEventListener("click", () => this.cancelRun());
    v.messages.addEventListener("click", (e) => this.#onCardClick(e));
    v.messages.addEventListener("submit", (e) => this.#onCardSubmit(e));
    v.newSession.addEventListener("click", () => {
      history.pushState(null, "", location.pathname + location.search);
      this.open(null);
      v.composer.focus();
    });
    v.noticeDismiss.addEventListener("click", () => v.notify(""));
    v.tokenForm.addEventListener("submit", (e) => this.#submitToken(e));
    window.addEventListener("hashchange", () => this.#followUrl());
    window.addEventListener("popstate", () => this.#followUrl());
    window.addEventListener("online", () => this.conn.online());
  }

  #submitToken(e) {
    e.preventDefault();
    this.token = this.view.token.value.trim();
    storeToken(this.token);
    this.view.showTokenForm(false);
    this.conn.start(); // same state: resumes from the cursor if there is one
  }

  #followUrl() {
    const id = sessionFromUrl();
    if (id !== this.state.sessionId) this.open(id);
  }
}

new Page(document).start();
