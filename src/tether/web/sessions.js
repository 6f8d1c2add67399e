// The sessions list: pure helpers over the REST session JSON (GET /v1/sessions).

export const SESSIONS_PAGE_SIZE = 50;
const STATUS_TEXT = {
  idle: "idle",
  queued: "queued",
  running: "running",
  waiting: "waiting for you",
};

/** Merge a fetched page into `list` (by id, newer data wins), most recent activity first. */
export function mergeSessions(list, items) {
  const byId = new Map(list.map((s) => [s.id, s]));
  for (const s of items ?? []) if (s?.id) byId.set(s.id, s);
  return sortByActivity([...byId.values()]);
}

/** Most recently active first; ties by id (ids sort by creation time). */
export function sortByActivity(list) {
  return [...list].sort((a, b) => {
    const d = Date.parse(b.updated_at ?? 0) - Date.parse(a.updated_at ?? 0);
    if (d) return d;
    return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
  });
}

/** The list without `id` (deleted). */
export function removeSession(list, id) {
  return list.filter((s) => s.id !== id);
}

/** Apply what the open session's own events say (title, status) to its list entry. */
export function patchSession(list, id, fields) {
  let found = false;
  const next = list.map((s) => {
    if (s.id !== id) return s;
    found = true;
    return { ...s, ...fields };
  });
  return found ? sortByActivity(next) : list;
}

const ROW_FIELDS = ["title", "status", "pending_interrupts", "version"];
const ACTIVITY_REDRAW_MS = 30_000;

/** Whether a row must be redrawn for `fields`: something it shows changed, or its last
 * activity is old enough for the relative time (and the order) to move. A streamed reply
 * sends many events that change nothing on the row. */
export function rowChanged(entry, fields, nowMs = Date.now()) {
  if (ROW_FIELDS.some((k) => k in fields && fields[k] !== entry[k])) return true;
  const shown = Date.parse(entry.updated_at ?? "");
  return Number.isNaN(shown) || nowMs - shown > ACTIVITY_REDRAW_MS;
}

/** "just now", "5 min ago", "3 h ago", "2 d ago", else the date. */
export function relativeTime(iso, nowMs = Date.now()) {
  const t = Date.parse(iso ?? "");
  if (Number.isNaN(t)) return "";
  const s = Math.max(0, Math.round((nowMs - t) / 1000));
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  if (s < 30 * 86_400) return `${Math.round(s / 86_400)} d ago`;
  return new Date(t).toISOString().slice(0, 10);
}

/** What a list row says about a session's runs. */
export function statusText(status) {
  return STATUS_TEXT[status] ?? String(status ?? "");
}

/** The pending-approvals badge text, or "" when there is none. */
export function badgeText(pending) {
  const n = Number(pending) || 0;
  if (n <= 0) return "";
  return n === 1 ? "1 request waiting" : `${n} requests waiting`;
}

/** A title the server will accept for a rename, or {error}. */
export function checkTitle(raw, maxChars = 200) {
  const title = String(raw ?? "").trim();
  if (!title) return { error: "A title cannot be empty." };
  if (title.length > maxChars) return { error: `A title has at most ${maxChars} characters.` };
  return { title };
}
