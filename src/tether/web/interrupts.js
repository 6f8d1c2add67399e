// Interrupt cards' pure helpers: outcome text, countdowns and the `respond` frame.
import { newCommandId } from "./net.js";

export const MAX_NOTE_CHARS = 10_000;

/** What an interrupt card says once it is resolved. */
export function outcomeText(interrupt) {
  switch (interrupt.status) {
    case "approved": return "Approved";
    case "denied": return "Denied";
    case "answered": return interrupt.answer == null ? "Answered" : `Answered: ${interrupt.answer}`;
    case "expired": return "Expired";
    case "cancelled": return "Cancelled";
    case "pending": return "Waiting for an answer";
    default: return `Resolved (${interrupt.status})`;
  }
}

/** A countdown: "4:05" under an hour, "1:02:03" above; "0:00" once past. */
export function formatRemaining(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const s = total % 60;
  const m = Math.floor(total / 60) % 60;
  const h = Math.floor(total / 3600);
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * The `respond` frame that answers `interrupt` with `reply` ({approved, note} for an
 * approval, {answer} for a question), or {error} when the reply cannot be right.
 */
export function respondFrame(interrupt, reply, id = newCommandId()) {
  if (!interrupt || interrupt.status !== "pending") return { error: "This request is already resolved." };
  const frame = { type: "respond", id, interrupt_id: interrupt.id };
  if (interrupt.kind === "approval") {
    if (typeof reply?.approved !== "boolean") return { error: "Choose Approve or Deny." };
    frame.approved = reply.approved;
    const note = typeof reply.note === "string" ? reply.note.trim() : "";
    if (note.length > MAX_NOTE_CHARS) return { error: `The note is too long (at most ${MAX_NOTE_CHARS} characters).` };
    if (note) frame.note = note;
    return { frame };
  }
  const answer = typeof reply?.answer === "string" ? reply.answer : "";
  if (!answer.trim()) return { error: "Type an answer first." };
  if (interrupt.choices && !interrupt.choices.includes(answer)) {
    return { error: `Answer with one of: ${interrupt.choices.join(", ")}.` };
  }
  frame.answer = interrupt.choices ? answer : answer.trim();
  return { frame };
}

/** True while a respond for this interrupt waits in `outbox` for its ack. */
export function isAnswering(outbox, interruptId) {
  return outbox.pending().some((f) => f.type === "respond" && f.interrupt_id === interruptId);
}
