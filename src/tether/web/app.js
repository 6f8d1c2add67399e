// The tether page: wires the session state (state.js), the socket (connection.js), the
// conversation DOM (view.js) and the sessions list (sidebar.js). No build step.
import { Connection } from "./connection.js";
import { Outbox, newCommandId } from "./net.js";
import { SessionsPanel } from "./sidebar.js";
import { SessionState, isAnswering, respondFrame } from "./state.js";
import { View } from "./view.js";

const TOKEN_KEY = "tether.token";
const LIST_REFRESH_MS = 30_000;
const CLOSE_MESSAGES = {
  1008: "Closed by the server: too many bad frames.",
  1009: "Closed by the server: a frame was too large.",
  4400: "The server rejected the handshake.",
  4401: "Not authenticated: enter an access token.",
  4403: "This session belongs to another user.",
  4404: "Session not found (deleted?). Pick another or start a new one.",
};

function sessionFromUrl() {
  return new URLSearchParams(location.hash.slice(1)).get("s") || null;
}

function storage(fn, fallback) {
  try {
    return fn(sessionStorage);
  } catch {
    return fallback; // storage disabled: the token lives only in the page
  }
}

function socketUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/ws`;
}

class Page {
  constructor(doc) {
    this.state = new SessionState(sessionFromUrl());
    this.outbox = new Outbox();
    this.token = storage((s) => s.getItem(TOKEN_KEY) ?? "", "");
    this.view = new View(doc, {
      state: () => this.state,
      pending: () => this.outbox.pending().filter((f) => f.type === "message"),
      isAnswering: (id) => isAnswering(this.outbox, id),
    });
    this.conn = new Connection(socketUrl(), {
      hello: () => this.state.hello(this.token),
      onFrame: (frame, sent) => this.#onFrame(frame, sent),
      onState: (kind, detail) => this.#onState(kind, detail),
    }, this.outbox);
    this.panel = new SessionsPanel(doc, {
      api: (path, init) => this.api(path, init),
      currentId: () => this.state.sessionId,
      notify: (text) => this.view.notify(text),
      deleted: (id) => this.#deleted(id),
    });
  }

  async start() {
    this.#bindEvents();
    this.view.queue();
    this.view.forgetToken.hidden = !this.token;
    await this.panel.load();
    // No session in the URL: reopen the most recent one rather than making another.
    if (!this.state.sessionId && this.panel.sessions.length) {
      this.state = new SessionState(this.panel.sessions[0].id);
    }
    this.conn.start();
    setInterval(() => document.visibilityState === "visible" && this.panel.load(), LIST_REFRESH_MS);
  }

  /** fetch() with the token; a 401 asks for one. Resolves to null when unreachable. */
  async api(path, init = {}) {
    const headers = { ...(init.headers ?? {}) };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let res;
    try {
      res = await fetch(path, { ...init, headers });
    } catch {
      return null;
    }
    if (res.status === 401) this.view.showTokenForm(true);
    return res;
  }

  /** Switch to another session (null: create one); unacked commands of the old one go. */
  open(sessionId) {
    this.state = new SessionState(sessionId);
    this.outbox.clear();
    this.view.notify("");
    this.view.queue();
    this.panel.draw();
    this.#toggleSessions(false);
    this.conn.start();
  }

  #onState(kind, detail = {}) {
    if (kind === "closed") {
      const text = CLOSE_MESSAGES[detail.code] ?? `Connection closed (${detail.code}).`;
      this.view.setStatus("closed", text);
      this.view.notify(text);
      this.view.showTokenForm(detail.code === 4401);
    } else {
      this.view.setStatus(kind, null, detail);
    }
  }

  #onFrame(frame, sent) {
    if (sent) this.view.queue({ reset: false }); // a pending message or answer settled
    if (frame.type === "ack") return this.#acked(frame, sent);
    if (frame.type === "error") return this.#onError(frame, sent);
    const change = this.state.apply(frame);
    this.view.queue(change);
    for (const f of change.failures) {
      this.view.notify(`Run failed: ${f.message}${f.retryable ? " (retryable)" : ""}`);
    }
    if (change.gap) return this.conn.resync();
    if (frame.type === "welcome") this.#attached();
    if (change.reset || change.session || change.runs || change.applied) this.#syncListEntry();
  }

  #attached() {
    const url = `#s=${encodeURIComponent(this.state.sessionId)}`;
    if (location.hash !== url) history.replaceState(null, "", url);
    this.view.showTokenForm(false);
  }

  /** Keep the open session's list row in step with what its events say. */
  #syncListEntry() {
    const { run } = this.state.runSummary();
    const status = run && ["queued", "running", "waiting"].includes(run.status) ? run.status : "idle";
    const fields = {
      status, pending_interrupts: this.state.pendingInterrupts().length,
      updated_at: new Date().toISOString(),
    };
    if (this.state.session?.title) fields.title = this.state.session.title;
    if (this.state.session?.version) fields.version = this.state.session.version;
    this.panel.patch(this.state.sessionId, fields);
  }

  #acked(frame, sent) {
    if (sent?.type === "respond") this.view.queue(this.state.acknowledge(sent, frame.result));
  }

  #onError(frame, sent) {
    if (sent?.type === "respond") {
      // Lost the race: interrupt.resolved (here or on its way) says how it ended.
      if (frame.code === "conflict") return this.view.queue(this.state.conflicted(sent.interrupt_id));
      return this.view.notify(`Your answer was not accepted: ${frame.message} (${frame.code})`);
    }
    const busy = frame.code === "busy" ? " (busy policy: reject; try again when the run ends)" : "";
    this.view.notify(`${frame.message} (${frame.code})${busy}`);
    if (sent?.type === "message") this.view.restoreDraft(sent.content);
  }

  /** Queue a command until acked and send it now if attached; false when not accepted. */
  #command(frame) {
    if (!this.conn.command(frame)) {
      this.view.notify("Too many unsent commands: wait for the connection to come back.");
      return false;
    }
    this.view.queue({ reset: false });
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
    const frame = { type: "message", id: newCommandId(), content };
    if (this.view.policy.dataset.touched) frame.policy = this.view.policy.value;
    if (this.#command(frame)) this.view.composer.value = "";
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

  retryRun() {
    const runId = this.state.retryRunId();
    if (runId) this.#command({ type: "retry", id: newCommandId(), run_id: runId });
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
    v.retry.addEventListener("click", () => this.retryRun());
    v.policy.addEventListener("change", () => { v.policy.dataset.touched = "true"; });
    v.messages.addEventListener("click", (e) => this.#onCardClick(e));
    v.messages.addEventListener("submit", (e) => this.#onCardSubmit(e));
    v.newSession.addEventListener("click", () => {
      history.pushState(null, "", location.pathname + location.search);
      this.open(null);
      v.composer.focus();
    });
    v.noticeDismiss.addEventListener("click", () => v.notify(""));
    v.toggleSessions.addEventListener("click", () => this.#toggleSessions());
    this.panel.nav.addEventListener("click", (e) => {
      if (e.target.closest("a.open")) this.#toggleSessions(false); // narrow screen: back to chat
    });
    v.tokenForm.addEventListener("submit", (e) => this.#submitToken(e));
    v.forgetToken.addEventListener("click", () => this.#forgetToken());
    window.addEventListener("hashchange", () => this.#followUrl());
    window.addEventListener("popstate", () => this.#followUrl());
    window.addEventListener("online", () => this.conn.online());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.panel.load();
    });
  }

  async #submitToken(e) {
    e.preventDefault();
    this.token = this.view.token.value.trim();
    storage((s) => s.setItem(TOKEN_KEY, this.token));
    this.view.token.value = "";
    this.view.showTokenForm(false);
    this.view.forgetToken.hidden = !this.token;
    this.view.notify("");
    await this.panel.load();
    this.conn.start(); // same state: resumes from the cursor if there is one
  }

  #forgetToken() {
    this.token = "";
    storage((s) => s.removeItem(TOKEN_KEY));
    this.view.forgetToken.hidden = true;
    this.conn.stop();
    this.view.setStatus("closed", "Signed out: enter an access token.");
    this.view.showTokenForm(true);
  }

  /** The sessions drawer of a narrow screen (always shown on a wide one). */
  #toggleSessions(show = !this.panel.nav.classList.contains("open")) {
    this.panel.nav.classList.toggle("open", show);
    this.view.toggleSessions.setAttribute("aria-expanded", String(show));
    if (show) this.panel.nav.querySelector("a, button")?.focus();
  }

  #deleted(id) {
    if (id !== this.state.sessionId) return;
    const next = this.panel.sessions[0]?.id ?? null;
    history.replaceState(null, "", next ? `#s=${encodeURIComponent(next)}` : location.pathname);
    this.open(next);
  }

  #followUrl() {
    const id = sessionFromUrl();
    if (id && id !== this.state.sessionId) this.open(id);
  }
}

new Page(document).start();
