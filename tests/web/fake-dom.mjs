// The least of a DOM that markdown.js needs, so its output can be inspected in node.
class Node {
  constructor(tagName) {
    this.tagName = tagName;
    this.children = [];
    this.attributes = {};
    this.dataset = {};
    this.className = "";
    this._text = "";
  }

  append(...nodes) {
    for (const n of nodes) this.children.push(typeof n === "string" ? new Text(n) : n);
  }

  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }

  set textContent(text) {
    this.children = [new Text(String(text))];
  }

  get textContent() {
    return this.children.map((c) => c.textContent).join("");
  }
}

class Text {
  constructor(text) {
    this.tagName = "#text";
    this.text = text;
    this.children = [];
  }

  get textContent() {
    return this.text;
  }
}

export const fakeDocument = {
  createElement: (tag) => new Node(tag),
  createTextNode: (text) => new Text(text),
};

/** Every element (not text) under `node`, depth first. */
export function elements(node) {
  const out = [];
  for (const c of node.children) {
    if (c.tagName !== "#text") out.push(c, ...elements(c));
  }
  return out;
}
