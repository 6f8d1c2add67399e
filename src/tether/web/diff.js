// Unified diffs (the `details.diff` of a file-edit approval) as classified lines; the view
// puts each line in a text node, so a diff can never inject markup.

export const MAX_DIFF_LINES = 2000;

/** Lines of a unified diff: {kind: "meta"|"hunk"|"add"|"del"|"ctx", text}; at most
 * MAX_DIFF_LINES, then one {kind: "more", text} line saying how many were left out. */
export function diffLines(diff, maxLines = MAX_DIFF_LINES) {
  const lines = String(diff ?? "").replace(/\r\n?/g, "\n").split("\n");
  if (lines.at(-1) === "") lines.pop();
  const out = lines.slice(0, maxLines).map((text) => ({ kind: lineKind(text), text }));
  if (lines.length > maxLines) {
    out.push({ kind: "more", text: `… ${lines.length - maxLines} more lines` });
  }
  return out;
}

function lineKind(text) {
  if (text.startsWith("+++") || text.startsWith("---")) return "meta";
  if (text.startsWith("diff ") || text.startsWith("index ")) return "meta";
  if (text.startsWith("@@")) return "hunk";
  if (text.startsWith("+")) return "add";
  if (text.startsWith("-")) return "del";
  return "ctx";
}

/** Counts of added and removed lines, for the card's summary. */
export function diffStat(lines) {
  let added = 0;
  let removed = 0;
  for (const l of lines) {
    if (l.kind === "add") added += 1;
    else if (l.kind === "del") removed += 1;
  }
  return { added, removed };
}
