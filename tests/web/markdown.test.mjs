// The safe Markdown subset: structure, and that no HTML or unsafe link ever comes through.
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseInline, parseMarkdown, renderMarkdown, safeUrl } from "../../src/tether/web/markdown.js";
import { elements, fakeDocument } from "./fake-dom.mjs";

const ALLOWED_TAGS = new Set(["div", "p", "pre", "code", "ul", "ol", "li", "strong", "em", "a"]);

test("code blocks keep their text verbatim, including markup and Markdown", () => {
  const blocks = parseMarkdown("before\n```js\nconst a = \"<b>\" * 2;\n**not bold**\n```\nafter");
  assert.deepEqual(blocks.map((b) => b.type), ["paragraph", "code", "paragraph"]);
  assert.deepEqual(blocks[1], { type: "code", lang: "js", text: 'const a = "<b>" * 2;\n**not bold**' });
});

test("an unclosed fence (still streaming) is a code block up to the end", () => {
  const blocks = parseMarkdown("```\nline 1\nline 2");
  assert.deepEqual(blocks, [{ type: "code", lang: "", text: "line 1\nline 2" }]);
});

test("bullet and numbered lists, headings and paragraphs", () => {
  const blocks = parseMarkdown("# Title\n\n- one\n- two\n  more\n\n3. three\n4. four\n\ntext");
  assert.deepEqual(blocks.map((b) => b.type), ["heading", "list", "list", "paragraph"]);
  assert.equal(blocks[1].ordered, false);
  assert.deepEqual(blocks[1].items, [[{ type: "text", text: "one" }], [{ type: "text", text: "two more" }]]);
  assert.equal(blocks[2].ordered, true);
  assert.equal(blocks[2].start, 3);
});

test("inline code, strong, emphasis and links", () => {
  assert.deepEqual(parseInline("a `x<y>` **b** *c* [d](https://e.org/f)"), [
    { type: "text", text: "a " },
    { type: "code", text: "x<y>" },
    { type: "text", text: " " },
    { type: "strong", children: [{ type: "text", text: "b" }] },
    { type: "text", text: " " },
    { type: "em", children: [{ type: "text", text: "c" }] },
    { type: "text", text: " " },
    { type: "link", href: "https://e.org/f", children: [{ type: "text", text: "d" }] },
  ]);
});

test("only http, https and mailto links are links; the rest stay literal text", () => {
  for (const url of ["https://a.b/c", "http://a.b", "mailto:x@y.z", "HTTPS://A.B"]) {
    assert.equal(safeUrl(url), url);
  }
  for (const url of ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)",
    " javascript:alert(1)", "data:text/html,<script>", "vbscript:x", "//evil.org", "/relative",
    "\u0001javascript:alert(1)", "https://a.b/ c"]) {
    assert.equal(safeUrl(url), null, url);
  }
  assert.deepEqual(parseInline("[x](javascript:alert(1))"), [
    { type: "text", text: "[x](javascript:alert(1))" },
  ]);
});

test("rendered output has only the renderer's own tags; HTML in the text stays text", () => {
  const text = '<img src=x onerror=alert(1)> <script>alert(2)</script>\n\n'
    + '- <a href="javascript:alert(3)">x</a>\n\n[y](javascript:alert(4)) [z](https://ok.org)\n'
    + "```\n<iframe src=//evil></iframe>\n```";
  const root = renderMarkdown(fakeDocument, text);
  const tags = elements(root).map((e) => e.tagName);
  assert.ok(tags.every((t) => ALLOWED_TAGS.has(t)), tags.join(","));
  const links = elements(root).filter((e) => e.tagName === "a");
  assert.deepEqual(links.map((a) => a.attributes.href), ["https://ok.org"]);
  assert.equal(links[0].attributes.rel, "noopener noreferrer nofollow");
  for (const e of elements(root)) {
    assert.deepEqual(Object.keys(e.attributes).filter((k) => !["href", "rel", "target", "start"].includes(k)), []);
  }
  assert.match(root.textContent, /<img src=x onerror=alert\(1\)>/);
  assert.match(root.textContent, /<iframe src=\/\/evil><\/iframe>/);
});

test("a bare URL becomes a link without its trailing punctuation", () => {
  assert.deepEqual(parseInline("see https://a.org/x."), [
    { type: "text", text: "see " },
    { type: "link", href: "https://a.org/x", children: [{ type: "text", text: "https://a.org/x" }] },
    { type: "text", text: "." },
  ]);
});

test("a file edit's diff renders as one text line per diff line, styled by kind", async () => {
  globalThis.document = fakeDocument; // cards.js builds with the global document
  const { diffBlock } = await import("../../src/tether/web/cards.js");
  const box = diffBlock({ path: "src/<b>.py", diff: "@@ -1 +1 @@\n-a = 1\n+a = '<img src=x onerror=alert(1)>'\n" });
  const all = elements(box);
  assert.deepEqual(new Set(all.map((e) => e.tagName)), new Set(["p", "code", "span", "pre"]));
  const lines = all.filter((e) => e.tagName === "span" && e.dataset.kind);
  assert.deepEqual(lines.map((l) => [l.dataset.kind, l.className]), [
    ["hunk", "line hunk"], ["del", "line del"], ["add", "line add"],
  ]);
  assert.equal(lines[2].textContent, "+a = '<img src=x onerror=alert(1)>'\n");
  assert.match(box.textContent, /src\/<b>\.py \+1 −1/);
  delete globalThis.document;
});
