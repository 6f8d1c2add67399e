// The sessions list (GET /v1/sessions): open, rename (PATCH with If-Match), delete.
import { textEl } from "./cards.js";
import {
  SESSIONS_PAGE_SIZE, badgeText, checkTitle, mergeSessions, patchSession, relativeTime,
  removeSession, rowChanged, statusText,
} from "./sessions.js";

export class SessionsPanel {
  #list = [];
  #cursor = null;
  #loaded = false;
  #loading = null;
  #missing = new Set();

  /** hooks: {api(path, init) → Response, currentId(), notify(text), deleted(id)} */
  constructor(doc, hooks) {
    this.hooks = hooks;
    this.nav = doc.getElementById("sessions");
    this.listEl = doc.getElementById("session-list");
    this.more = doc.getElementById("more-sessions");
    this.empty = doc.getElementById("sessions-empty");
    this.listEl.addEventListener("click", (e) => this.#onClick(e));
    this.listEl.addEventListener("submit", (e) => this.#onRename(e));
    this.listEl.addEventListener("keydown", (e) => this.#onKey(e));
    this.more.addEventListener("click", () => this.load(true));
  }

  get sessions() {
    return this.#list;
  }

  get loaded() {
    return this.#loaded;
  }

  /** Fetch the first page (or the next one); false when the server refused. */
  async load(next = false) {
    const query = new URLSearchParams({ limit: String(SESSIONS_PAGE_SIZE) });
    if (next && this.#cursor) query.set("cursor", this.#cursor);
    const res = await this.hooks.api(`/v1/sessions?${query}`);
    if (!res?.ok) return false;
    const page = await res.json();
    this.#list = mergeSessions(next ? this.#list : [], page.items);
    if (!next && this.#list.length === 0) this.#list = [];
    this.#cursor = page.next_cursor;
    this.#loaded = true;
    this.draw();
    return true;
  }

  /** What the open session's own events say about it (title, status, pending count). */
  patch(id, fields) {
    const entry = this.#list.find((s) => s.id === id);
    if (!entry) return void this.#find(id);
    if (!rowChanged(entry, fields)) return;
    this.#list = patchSession(this.#list, id, fields);
    this.draw();
  }

  /** Reload the list once for a session it lacks (at most one load in flight; a session
   * still missing afterwards, e.g. beyond the first page, asks no more). */
  #find(id) {
    if (this.#loading || this.#missing.has(id)) return;
    this.#loading = this.load().finally(() => {
      this.#loading = null;
      if (!this.#list.some((s) => s.id === id)) this.#missing.add(id);
    });
  }

  draw() {
    const current = this.hooks.currentId();
    const rows = this.#list.map((s) => this.#row(s, s.id === current));
    this.listEl.replaceChildren(...rows);
    this.more.hidden = !this.#cursor;
    this.empty.hidden = this.#list.length > 0;
  }

  #row(s, current) {
    const li = document.createElement("li");
    li.className = "session";
    li.dataset.sessionId = s.id;
    li.dataset.status = s.status ?? "idle";
    const a = document.createElement("a");
    a.className = "open";
    a.href = `#s=${encodeURIComponent(s.id)}`;
    if (current) a.setAttribute("aria-current", "page");
    const title = textEl("span", "title", s.title || "Untitled");
    const meta = textEl("span", "meta", [s.agent, relativeTime(s.updated_at), statusText(s.status)]
      .filter(Boolean).join(" · "));
    a.append(title, meta);
    const badge = badgeText(s.pending_interrupts);
    if (badge) {
      const b = textEl("span", "badge", String(s.pending_interrupts));
      b.dataset.pending = String(s.pending_interrupts);
      b.title = badge;
      b.setAttribute("aria-label", badge);
      a.append(b);
    }
    const actions = document.createElement("div");
    actions.className = "row-actions";
    for (const [action, label] of [["rename", "Rename"], ["delete", "Delete"]]) {
      const btn = textEl("button", action, label);
      btn.type = "button";
      btn.dataset.action = action;
      btn.setAttribute("aria-label", `${label} “${s.title || "Untitled"}”`);
      actions.append(btn);
    }
    li.append(a, actions);
    return li;
  }

  #onClick(e) {
    const btn = e.target.closest("button[data-action]");
    const li = btn?.closest("[data-session-id]");
    if (!li) return;
    const id = li.dataset.sessionId;
    if (btn.dataset.action === "rename") this.#startRename(li, id);
    else if (btn.dataset.action === "delete") this.#delete(id);
    else if (btn.dataset.action === "cancel-rename") this.draw();
  }

  #onKey(e) {
    if (e.key === "Escape" && e.target.matches("input[data-field=title]")) {
      this.draw();
      this.listEl.querySelector(`[data-session-id="${CSS.escape(e.target.form.dataset.sessionId)}"] .rename`)?.focus();
    }
  }

  #startRename(li, id) {
    const s = this.#list.find((x) => x.id === id);
    const form = document.createElement("form");
    form.className = "rename-form";
    form.dataset.sessionId = id;
    const label = textEl("label", "visually-hidden", "New title");
    label.htmlFor = `rename-${id}`;
    const input = document.createElement("input");
    input.id = label.htmlFor;
    input.dataset.field = "title";
    input.value = s?.title ?? "";
    input.maxLength = 200;
    input.required = true;
    const save = textEl("button", "", "Save");
    save.type = "submit";
    const cancel = textEl("button", "", "Cancel");
    cancel.type = "button";
    cancel.dataset.action = "cancel-rename";
    form.append(label, input, save, cancel);
    li.replaceChildren(form);
    input.focus();
    input.select();
  }

  async #onRename(e) {
    e.preventDefault();
    const form = e.target;
    const id = form.dataset.sessionId;
    const { title, error } = checkTitle(form.querySelector("input").value);
    if (error) return this.hooks.notify(error);
    const s = this.#list.find((x) => x.id === id);
    const res = await this.hooks.api(`/v1/sessions/${encodeURIComponent(id)}`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json", "If-Match": `"${s?.version ?? ""}"` },
      body: JSON.stringify({ title }),
    });
    if (res?.status === 412) {
      this.hooks.notify("The session changed elsewhere; its new title is shown. Rename again if you wish.");
      return void this.load();
    }
    if (!res?.ok) return this.hooks.notify(await problemText(res, "Could not rename the session."));
    this.#list = mergeSessions(this.#list, [await res.json()]);
    this.draw();
    this.listEl.querySelector(`[data-session-id="${CSS.escape(id)}"] .open`)?.focus();
  }

  async #delete(id) {
    const s = this.#list.find((x) => x.id === id);
    if (!confirm(`Delete “${s?.title || "Untitled"}” and its whole history?`)) return;
    const res = await this.hooks.api(`/v1/sessions/${encodeURIComponent(id)}`, { method: "DELETE" });
    if (!res?.ok && res?.status !== 404) {
      return this.hooks.notify(await problemText(res, "Could not delete the session."));
    }
    this.#list = removeSession(this.#list, id);
    this.draw();
    this.hooks.deleted(id);
  }
}

/** The `detail` of an RFC 9457 problem response, else `fallback`. */
export async function problemText(res, fallback) {
  if (!res) return `${fallback} (the server is unreachable)`;
  try {
    const body = await res.json();
    return body.detail ? `${fallback} ${body.detail}` : fallback;
  } catch {
    return `${fallback} (HTTP ${res.status})`;
  }
}
