// A small, safe Markdown subset for model text. No HTML from the text is ever interpreted:
// `parseMarkdown` turns text into a tree of plain values, and `renderMarkdown` builds DOM
// nodes from it with createElement/textContent only (never innerHTML). Links keep only
// http:, https: and mailto: targets; anything else stays visible as plain text.
//
// Blocks: fenced code (```lang), headings (#..######), lists (-, *, +, 1.), paragraphs.
// Inline: `code`, **strong**, *em* / _em_, [text](url), bare http(s) URLs.

const SAFE_URL = /^(https?:\/\/|mailto:)/i;
const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+.#-]*)\s*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const BULLET = /^ {0,3}[-*+]\s+(.*)$/;
const ORDERED = /^ {0,3}(\d{1,9})[.)]\s+(.*)$/;

/** The URL when it is safe to link to (http, https, mailto), else null. */
export function safeUrl(raw) {
  const url = String(raw ?? "").trim();
  // Control characters and whitespace inside a scheme are how `java\tscript:` sneaks by.
  if (/[\u0000-\u001f\u007f\s]/.test(url)) return null;
  return SAFE_URL.test(url) ? url : null;
}

/** Text → blocks: {type: "code", lang, text} | {type: "heading", level, inlines}
 * | {type: "list", ordered, start, items: [inlines]} | {type: "paragraph", inlines}. */
export function parseMarkdown(text) {
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i += 1; continue; }
    const fence = FENCE.exec(line);
    if (fence) { i = codeBlock(lines, i, fence, blocks); continue; }
    const heading = HEADING.exec(line);
    if (heading) {
      blocks.push({ type: "heading", level: heading[1].length, inlines: parseInline(heading[2]) });
      i += 1;
      continue;
    }
    if (BULLET.test(line) || ORDERED.test(line)) { i = listBlock(lines, i, blocks); continue; }
    i = paragraph(lines, i, blocks);
  }
  return blocks;
}

function codeBlock(lines, start, fence, blocks) {
  const marker = fence[1];
  const body = [];
  let i = start + 1;
  while (i < lines.length && !lines[i].trim().startsWith(marker)) body.push(lines[i++]);
  blocks.push({ type: "code", lang: fence[2] || "", text: body.join("\n") });
  return i + 1; // past the closing fence (or the end: an unclosed block still streams)
}

function listBlock(lines, start, blocks) {
  const ordered = ORDERED.test(lines[start]);
  const pattern = ordered ? ORDERED : BULLET;
  const items = [];
  let i = start;
  while (i < lines.length) {
    const m = pattern.exec(lines[i]);
    if (m) items.push(ordered ? m[2] : m[1]);
    else if (lines[i].trim() && /^\s{2,}/.test(lines[i]) && items.length) {
      items[items.length - 1] += ` ${lines[i].trim()}`; // a continuation line
    } else break;
    i += 1;
  }
  const startAt = ordered ? Number(ORDERED.exec(lines[start])[1]) : 1;
  blocks.push({ type: "list", ordered, start: startAt, items: items.map(parseInline) });
  return i;
}

function paragraph(lines, start, blocks) {
  const body = [];
  let i = start;
  while (i < lines.length && lines[i].trim() && !FENCE.test(lines[i]) && !HEADING.test(lines[i])
    && !BULLET.test(lines[i]) && !ORDERED.test(lines[i])) {
    body.push(lines[i++]);
  }
  blocks.push({ type: "paragraph", inlines: parseInline(body.join("\n")) });
  return i;
}

const INLINE = new RegExp([
  "(`+)([^`]|[^`][\\s\\S]*?[^`])\\1(?!`)",      // 1,2: code span
  "\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*",           // 3: strong
  "\\*(?=[^\\s*])([\\s\\S]*?[^\\s*])\\*",          // 4: em
  "\\b_(?=\\S)([\\s\\S]*?\\S)_\\b",               // 5: em
  "\\[([^\\]\\n]+)\\]\\(\\s*([^()\\s]*(?:\\([^()\\s]*\\)[^()\\s]*)*)\\s*\\)", // 6,7: link
  "(https?:\\/\\/[^\\s<>\"'`]+[^\\s<>\"'`.,;:!?)\\]])", // 8: bare URL
].join("|"), "g");

/** Text → inlines: {type: "text"|"code", text} | {type: "strong"|"em", children}
 * | {type: "link", href, children}. A link with an unsafe target becomes its source text. */
export function parseInline(text, depth = 0) {
  const out = [];
  let last = 0;
  const source = String(text ?? "");
  for (const m of source.matchAll(INLINE)) {
    if (m.index > last) pushText(out, source.slice(last, m.index));
    out.push(inlineNode(m, depth));
    last = m.index + m[0].length;
  }
  if (last < source.length) pushText(out, source.slice(last));
  return out;
}

function inlineNode(m, depth) {
  const nested = (t) => (depth < 4 ? parseInline(t, depth + 1) : [{ type: "text", text: t }]);
  if (m[2] !== undefined) return { type: "code", text: m[2] };
  if (m[3] !== undefined) return { type: "strong", children: nested(m[3]) };
  if (m[4] !== undefined) return { type: "em", children: nested(m[4]) };
  if (m[5] !== undefined) return { type: "em", children: nested(m[5]) };
  if (m[6] !== undefined) {
    const href = safeUrl(m[7]);
    return href ? { type: "link", href, children: nested(m[6]) } : { type: "text", text: m[0] };
  }
  return { type: "link", href: m[8], children: [{ type: "text", text: m[8] }] };
}

function pushText(out, text) {
  const prev = out[out.length - 1];
  if (prev?.type === "text") prev.text += text;
  else out.push({ type: "text", text });
}

/** Build the DOM of `text` under a new <div class="md"> of `doc`; only elements of this
 * module's own choosing are created, and every string goes in as a text node. */
export function renderMarkdown(doc, text) {
  const root = doc.createElement("div");
  root.className = "md";
  for (const block of parseMarkdown(text)) root.append(renderBlock(doc, block));
  return root;
}

function renderBlock(doc, block) {
  if (block.type === "code") {
    const pre = doc.createElement("pre");
    const code = doc.createElement("code");
    if (block.lang) code.dataset.lang = block.lang;
    code.textContent = block.text;
    pre.append(code);
    return pre;
  }
  if (block.type === "list") {
    const list = doc.createElement(block.ordered ? "ol" : "ul");
    if (block.ordered && block.start !== 1) list.setAttribute("start", String(block.start));
    for (const item of block.items) list.append(renderInlines(doc, doc.createElement("li"), item));
    return list;
  }
  // Headings from a model are shown as strong paragraphs: the page owns its outline.
  const el = doc.createElement("p");
  if (block.type === "heading") el.className = `heading h${block.level}`;
  return renderInlines(doc, el, block.inlines);
}

function renderInlines(doc, parent, inlines) {
  for (const node of inlines) parent.append(renderInline(doc, node));
  return parent;
}

function renderInline(doc, node) {
  if (node.type === "text") return doc.createTextNode(node.text);
  if (node.type === "code") {
    const code = doc.createElement("code");
    code.textContent = node.text;
    return code;
  }
  if (node.type === "link") {
    const a = doc.createElement("a");
    a.setAttribute("href", node.href);
    a.setAttribute("rel", "noopener noreferrer nofollow");
    a.setAttribute("target", "_blank");
    return renderInlines(doc, a, node.children);
  }
  return renderInlines(doc, doc.createElement(node.type === "strong" ? "strong" : "em"), node.children);
}
