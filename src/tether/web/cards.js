// DOM builders for the conversation: messages, tool cards and interrupt cards. Every
// string from the server goes in through textContent (or markdown.js, which does the same).
import { diffLines, diffStat } from "./diff.js";
import { renderMarkdown } from "./markdown.js";
import { outcomeText } from "./state.js";

const ON_TIMEOUT_TEXT = {
  deny: "then it is denied",
  fail: "then the run fails",
};

export function textEl(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  el.textContent = text;
  return el;
}

function button(text, className, data) {
  const b = textEl("button", className, text);
  b.type = "button";
  Object.assign(b.dataset, data);
  return b;
}

/** A message bubble; its text goes in with `setMessageText`. */
export function messageElement(role, tag = "article") {
  const el = document.createElement(tag);
  el.className = `message ${role}`;
  el.dataset.role = role;
  const who = textEl("p", "who", role === "user" ? "You" : "Assistant");
  const text = document.createElement("div");
  text.className = "text";
  el.append(who, text);
  return el;
}

/** User text stays literal; assistant text is safe Markdown (markdown.js). */
export function setMessageText(el, role, content) {
  if (el.dataset.content === content) return;
  el.dataset.content = content;
  const text = el.querySelector(".text");
  if (role === "assistant") text.replaceChildren(renderMarkdown(document, content));
  else text.textContent = content;
}

/** A collapsible card for one tool call: its arguments, then its result or error. */
export function toolCard(call) {
  const el = document.createElement("details");
  el.className = "tool-call";
  el.dataset.callId = call.id;
  const summary = document.createElement("summary");
  summary.append(textEl("span", "tool-name", call.tool ?? "tool"), textEl("span", "tool-state", ""));
  el.append(summary, textEl("p", "label", "Arguments"), jsonBlock(call.args, "Arguments"));
  const result = document.createElement("div");
  result.className = "result";
  el.append(result);
  updateToolCard(el, call);
  return el;
}

export function updateToolCard(el, call) {
  if (el.dataset.status === call.status) return;
  el.dataset.status = call.status;
  const stateText = { running: "running…", ok: "done", error: "failed" }[call.status] ?? call.status;
  el.querySelector(".tool-state").textContent = ` · ${stateText}`;
  const result = el.querySelector(".result");
  if (call.status === "running") return result.replaceChildren();
  const isError = call.status === "error";
  const body = isError ? call.error : call.output;
  result.replaceChildren(textEl("p", "label", isError ? "Error" : "Result"),
    jsonBlock(body, isError ? "Error" : "Result"));
}

function jsonBlock(value, label) {
  const text = typeof value === "string" ? value : JSON.stringify(value ?? null, null, 2);
  const pre = textEl("pre", "args", text);
  pre.setAttribute("aria-label", label);
  pre.tabIndex = 0; // scrollable by keyboard when long
  return pre;
}

/** The diff of a file edit, one text node per line, styled by kind (+, -, @@). */
export function diffBlock(details) {
  const lines = diffLines(details.diff);
  const { added, removed } = diffStat(lines);
  const box = document.createElement("div");
  box.className = "diff";
  const head = textEl("p", "diff-head", "");
  if (details.path) head.append(textEl("code", "", String(details.path)), " ");
  head.append(textEl("span", "stat", `+${added} −${removed}`));
  const pre = document.createElement("pre");
  pre.setAttribute("aria-label", `Changes to ${details.path ?? "the file"}`);
  pre.tabIndex = 0;
  for (const line of lines) {
    const span = textEl("span", `line ${line.kind}`, `${line.text}\n`);
    span.dataset.kind = line.kind;
    pre.append(span);
  }
  box.append(head, pre);
  return box;
}

/** A card asking the human: an approval (tool, arguments, diff) or a question. */
export function interruptCard(i, n) {
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
  if (i.kind === "approval") el.append(...approvalBody(i));
  if (i.expiresAt !== null) el.append(deadlineLine(i));
  el.append(i.kind === "approval" ? approvalControls(n) : questionControls(i, n));
  const outcome = textEl("p", "outcome", "");
  outcome.setAttribute("aria-live", "polite");
  outcome.hidden = true;
  el.append(outcome);
  return el;
}

function approvalBody(i) {
  const tool = textEl("p", "tool", "Tool: ");
  tool.append(textEl("code", "", i.tool ?? "(unknown)"));
  const parts = [tool];
  if (typeof i.details?.diff === "string") parts.push(diffBlock(i.details));
  if (i.args !== null && i.args !== undefined) {
    const args = document.createElement("details");
    args.className = "args-box";
    args.open = !i.details?.diff; // the diff says it better; arguments stay one click away
    args.append(textEl("summary", "", "Arguments"), jsonBlock(i.args, "Arguments"));
    parts.push(args);
  }
  return parts;
}

function deadlineLine(i) {
  const deadline = textEl("p", "deadline", "");
  deadline.dataset.expiresAt = String(i.expiresAt);
  const time = document.createElement("time");
  time.dateTime = new Date(i.expiresAt).toISOString();
  time.title = new Date(i.expiresAt).toLocaleString();
  deadline.append("Answer within ", time);
  const after = ON_TIMEOUT_TEXT[i.onTimeout];
  if (after) deadline.append(`, ${after}`);
  deadline.append(".");
  return deadline;
}

/** Close a card on its outcome (approved by another tab, expired, …). */
export function resolveCard(el, i) {
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
  buttons.append(button("Approve", "approve", { action: "approve" }),
    button("Deny", "deny", { action: "deny" }));
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
    for (const choice of i.choices) buttons.append(button(choice, "choice", { choice }));
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
