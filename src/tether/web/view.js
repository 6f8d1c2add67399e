// The conversation DOM: messages, tool cards, interrupt cards, run and connection status.
// Redraws are batched to at most one per animation frame (net.js FrameBatcher).
import {
  interruptCard, messageElement, resolveCard, setMessageText, textEl, toolCard, updateToolCard,
} from "./cards.js";
import { FrameBatcher, connectionText } from "./net.js";
import { formatRemaining } from "./state.js";

const RUN_TEXT = {
  queued: "Run queued",
  running: "Running…",
  waiting: "Waiting for you",
  completed: "Run completed",
  cancelled: "Run cancelled",
  interrupted: "Run interrupted",
};
const POLICY_TEXT = {
  enqueue: "it waits its turn",
  reject: "it is refused",
  interrupt: "it cancels the active run",
};

export class View {
  #messageEls = new Map();
  #interruptEls = new Map(); // interrupt_id -> card element
  #toolEls = new Map();      // call_id -> card element
  #ticker = 0;
  #cardCount = 0;
  #retryAtMs = 0;

  constructor(doc, hooks) {
    const $ = (id) => doc.getElementById(id);
    this.hooks = hooks; // {state(), pending(), isAnswering(id)}
    for (const id of ["status", "session-title", "log", "messages", "pending", "run-status",
      "run-progress", "notice", "notice-dismiss", "composer-form", "composer", "cancel", "retry",
      "new-session", "token-form", "token", "policy", "forget-token", "toggle-sessions"]) {
      this[id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = $(id);
    }
    this.batcher = new FrameBatcher((fn) => requestAnimationFrame(fn), (b) => this.#flush(b));
  }

  /** Queue a redraw of what `change` touched (or of everything). */
  queue(change = { reset: true }) {
    this.batcher.add(change);
  }

  #flush(batch) {
    const state = this.hooks.state();
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 48;
    if (batch.reset) this.#rebuild(state);
    else {
      for (const id of batch.messages) this.#drawMessage(state, state.messages.get(id));
      for (const id of batch.tools) this.#drawTool(state.tools.get(id));
      for (const id of batch.interrupts) this.#drawInterrupt(state.interrupts.get(id));
    }
    this.#drawBusy(state);
    this.#tick();
    this.#drawPending(state);
    this.#drawRun(state);
    this.sessionTitle.textContent = state.session?.title || "";
    if (state.session?.policy && !this.policy.dataset.touched) this.policy.value = state.session.policy;
    if (atBottom) this.log.scrollTop = this.log.scrollHeight;
  }

  #rebuild(state) {
    this.messages.replaceChildren();
    this.#messageEls.clear();
    this.#toolEls.clear();
    for (const m of state.messages.values()) this.#drawMessage(state, m);
    for (const t of state.tools.values()) this.#drawTool(t);
    // Cards still known are reused (a half-typed answer survives a resync), then re-placed.
    for (const id of this.#interruptEls.keys()) {
      if (!state.interrupts.has(id)) this.#interruptEls.delete(id);
    }
    for (const i of state.interrupts.values()) this.#drawInterrupt(i, true);
  }

  #drawTool(call) {
    if (!call) return;
    let el = this.#toolEls.get(call.id);
    if (!el) {
      el = toolCard(call);
      this.#toolEls.set(call.id, el);
      this.#placeCard(el, call.after);
    }
    updateToolCard(el, call);
  }

  /** Create, place (`place`: again) and update the card of one interrupt. */
  #drawInterrupt(i, place = false) {
    if (!i) return;
    let el = this.#interruptEls.get(i.id);
    if (!el) {
      el = interruptCard(i, ++this.#cardCount);
      this.#interruptEls.set(i.id, el);
      place = true;
    }
    if (place) this.#placeCard(el, i.after);
    if (i.status !== "pending" && el.dataset.status !== i.status) resolveCard(el, i);
  }

  /** A card goes right after its anchor message and the cards already following it. */
  #placeCard(el, afterId) {
    const anchor = afterId ? this.#messageEls.get(afterId) : null;
    if (afterId && !anchor) return this.messages.append(el);
    let ref = anchor ? anchor.nextElementSibling : this.messages.firstElementChild;
    while (ref && ref !== el && (ref.dataset.interruptId || ref.dataset.callId)) {
      ref = ref.nextElementSibling;
    }
    if (ref !== el) this.messages.insertBefore(el, ref);
  }

  /** Controls are disabled while our answer is in flight, or lost to someone else's. */
  #drawBusy(state) {
    for (const [id, el] of this.#interruptEls) {
      const i = state.interrupts.get(id);
      const controls = el.querySelector(".controls");
      if (!i || !controls) continue;
      const sending = this.hooks.isAnswering(id);
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

  /** Redraw the countdowns (and the reconnect countdown) now, and every second while shown. */
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
    const reconnecting = this.status.dataset.state === "reconnecting";
    if (reconnecting) this.status.textContent = connectionText("reconnecting", this.#retryAtMs - now);
    const needed = deadlines.length > 0 || reconnecting;
    if (needed && !this.#ticker) {
      this.#ticker = setInterval(() => this.#tick(), 1000);
    } else if (!needed && this.#ticker) {
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
    setMessageText(el, m.role, m.content);
    el.dataset.partial = String(m.partial);
    el.setAttribute("aria-busy", String(state.isStreaming(m)));
  }

  #drawPending(state) {
    const items = this.hooks.pending().filter((f) => !state.commandIds.has(f.id)).map((f) => {
      const el = messageElement("user", "li");
      delete el.dataset.role; // not a logged message yet
      el.dataset.pending = "true";
      el.dataset.commandId = f.id;
      el.querySelector(".text").textContent = f.content;
      el.querySelector(".who").textContent = "You (sending…)";
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
    if (run?.status === "queued" && run.position) text += ` (position ${run.position})`;
    if (interrupt?.prompt) text += `: ${interrupt.prompt}`;
    if (queued > 0) {
      const policy = state.session?.policy ?? "enqueue";
      text += ` · ${queued} more queued (busy policy: ${policy}, ${POLICY_TEXT[policy] ?? policy})`;
    }
    this.runStatus.textContent = text;
    this.runStatus.dataset.state = run?.status ?? "idle";
    this.#drawProgress(run);
    this.cancel.disabled = state.activeRunId() === null;
    this.retry.hidden = state.retryRunId() === null;
  }

  #drawProgress(run) {
    const p = run?.status === "running" ? run.progress : null;
    this.runProgress.hidden = !p;
    if (!p) return;
    const bar = this.runProgress.querySelector("progress");
    if (p.total) {
      bar.max = p.total;
      bar.value = p.done ?? 0;
    } else bar.removeAttribute("value"); // indeterminate
    const count = p.total ? ` ${p.done ?? 0}/${p.total}` : "";
    this.runProgress.querySelector(".label").textContent = `${p.label}${count}`;
  }

  /** The connection line; `detail.retryAtMs` drives the "reconnecting in Ns" countdown. */
  setStatus(kind, text = null, detail = {}) {
    this.#retryAtMs = detail.retryAtMs ?? 0;
    this.status.dataset.state = kind;
    this.status.textContent = text ?? connectionText(kind, this.#retryAtMs - Date.now());
    this.#tick();
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

export { textEl };
