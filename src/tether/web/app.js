// The minimal tether page: one WebSocket (Connection), the DOM (View), and the wiring.
// Protocol state lives in state.js, which knows nothing of sockets or the DOM.
import {
  Outbox, SessionState, backoffDelayMs, isTerminalClose, newCommandId,
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
  #dirty = new Set();
  #full = true;
  #frame = 0;

  constructor(doc, getState, getPending) {
    const $ = (id) => doc.getElementById(id);
    this.getState = getState;
    this.getPending = getPending; // () => message frames not yet echoed by the server
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
    for (const id of change.messages) this.#dirty.add(id);
    if (!this.#frame) this.#frame = requestAnimationFrame(() => this.#flush());
  }

  #flush() {
    this.#frame = 0;
    const state = this.getState();
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 48;
    if (this.#full) this.#rebuild(state);
    else for (const id of this.#dirty) this.#drawMessage(state, state.messages.get(id));
    this.#full = false;
    this.#dirty.clear();
    this.#drawPending(state);
    this.#drawRun(state);
    this.sessionTitle.textContent = state.session?.title || "";
    if (atBottom) this.log.scrollTop = this.log.scrollHeight;
  }

  #rebuild(state) {
    this.messages.replaceChildren();
    this.#messageEls.clear();
    for (const m of state.messages.values()) this.#drawMessage(state, m);
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
    this.view = new View(doc, () => this.state, () => this.#pendingMessages());
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
    if (frame.type === "ack") return this.#settled(frame.id);
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

  #settled(id) {
    const frame = this.outbox.settle(id);
    if (frame) this.view.queue({ reset: false, messages: [] });
    return frame;
  }

  #onError(frame) {
    const sent = frame.id ? this.#settled(frame.id) : undefined;
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
