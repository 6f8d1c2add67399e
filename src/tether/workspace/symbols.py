"""Top-level symbols of a source file: Python through ``ast``; JavaScript, TypeScript, Go
and Rust through tree-sitter grammars shipped as wheels (no download at run time).

"Top-level" means declared directly in the module (an ``export`` wrapper is looked
through). A file that does not parse yields the symbols tree-sitter could still recover,
or none for Python. Lines are 1-based and inclusive.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

import tree_sitter


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    kind: str
    line: int
    end_line: int

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "line": self.line, "end_line": self.end_line}


LANGUAGES = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust",
}  # fmt: skip


def language_of(path: str) -> str | None:
    return LANGUAGES.get(PurePosixPath(path).suffix.lower())


def symbols_of(path: str, source: str) -> list[Symbol]:
    """The top-level symbols of ``source``, in file order; [] for unknown languages."""
    language = language_of(path)
    if language is None:
        return []
    if language == "python":
        return _python(source)
    tree = _parser(language).parse(source.encode("utf-8", errors="replace"))
    return list(_TREE_SITTER[language](tree.root_node))


# ---------------------------------------------------------------- Python


def _python(source: str) -> list[Symbol]:
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found: list[Symbol] = []
    for node in module.body:
        end = node.end_lineno or node.lineno
        if isinstance(node, ast.ClassDef):
            found.append(Symbol(node.name, "class", node.lineno, end))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(Symbol(node.name, "function", node.lineno, end))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            found.extend(Symbol(name, "variable", node.lineno, end) for name in names)
    return found


# ---------------------------------------------------------------- tree-sitter

Node = tree_sitter.Node


@functools.cache
def _parser(language: str) -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(_grammar(language)))


def _grammar(language: str) -> object:
    if language == "javascript":
        import tree_sitter_javascript

        return tree_sitter_javascript.language()
    if language in ("typescript", "tsx"):
        import tree_sitter_typescript

        if language == "tsx":
            return tree_sitter_typescript.language_tsx()
        return tree_sitter_typescript.language_typescript()
    if language == "go":
        import tree_sitter_go

        return tree_sitter_go.language()
    import tree_sitter_rust

    return tree_sitter_rust.language()


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", errors="replace") if node is not None and node.text else ""


def _symbol(name: str, kind: str, node: Node) -> Symbol:
    return Symbol(name, kind, node.start_point[0] + 1, node.end_point[0] + 1)


JS_KINDS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "type_alias_declaration": "type",
    "enum_declaration": "enum",
    "module": "namespace",
    "internal_module": "namespace",
}


def _js_declaration(node: Node, outer: Node) -> Iterator[Symbol]:
    kind = JS_KINDS.get(node.type)
    if kind is not None:
        name = _text(node.child_by_field_name("name"))
        if name:
            yield _symbol(name, kind, outer)
    elif node.type in ("lexical_declaration", "variable_declaration"):
        for child in node.named_children:
            if child.type == "variable_declarator":
                target = child.child_by_field_name("name")
                if target is not None and target.type == "identifier":
                    yield _symbol(_text(target), "variable", outer)


def _javascript(root: Node) -> Iterator[Symbol]:
    for node in root.named_children:
        if node.type == "export_statement":
            declaration = node.child_by_field_name("declaration")
            for child in [declaration] if declaration is not None else node.named_children:
                yield from _js_declaration(child, node)
        elif node.type == "expression_statement" and node.named_children:
            yield from _js_declaration(node.named_children[0], node)  # TS `namespace X {}`
        else:
            yield from _js_declaration(node, node)


def _go_specs(node: Node, spec_type: str, kind: str) -> Iterator[Symbol]:
    specs = [c for c in node.named_children if c.type == spec_type]
    for group in (c for c in node.named_children if c.type.endswith("_spec_list")):
        specs.extend(c for c in group.named_children if c.type == spec_type)
    for spec in specs:
        for name in spec.children_by_field_name("name"):
            yield _symbol(_text(name), kind, spec)


def _go_receiver(node: Node) -> str:
    receiver = node.child_by_field_name("receiver")
    types = [c for c in _walk(receiver) if c.type == "type_identifier"] if receiver else []
    return _text(types[0]) if types else ""


def _go(root: Node) -> Iterator[Symbol]:
    for node in root.named_children:
        name = _text(node.child_by_field_name("name"))
        if node.type == "function_declaration":
            yield _symbol(name, "function", node)
        elif node.type == "method_declaration":
            receiver = _go_receiver(node)
            yield _symbol(f"{receiver}.{name}" if receiver else name, "method", node)
        elif node.type == "type_declaration":
            yield from _go_specs(node, "type_spec", "type")
            yield from _go_specs(node, "type_alias", "type")
        elif node.type == "var_declaration":
            yield from _go_specs(node, "var_spec", "variable")
        elif node.type == "const_declaration":
            yield from _go_specs(node, "const_spec", "constant")


RUST_KINDS = {
    "function_item": "function",
    "struct_item": "struct",
    "enum_item": "enum",
    "union_item": "union",
    "trait_item": "trait",
    "mod_item": "module",
    "const_item": "constant",
    "static_item": "static",
    "type_item": "type",
    "macro_definition": "macro",
}


def _rust(root: Node) -> Iterator[Symbol]:
    for node in root.named_children:
        kind = RUST_KINDS.get(node.type)
        if kind is not None:
            yield _symbol(_text(node.child_by_field_name("name")), kind, node)
        elif node.type == "impl_item":
            target = _text(node.child_by_field_name("type"))
            trait = _text(node.child_by_field_name("trait"))
            yield _symbol(f"{trait} for {target}" if trait else target, "impl", node)


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.named_children:
        yield from _walk(child)


_TREE_SITTER: dict[str, Callable[[Node], Iterator[Symbol]]] = {
    "javascript": _javascript,
    "typescript": _javascript,
    "tsx": _javascript,
    "go": _go,
    "rust": _rust,
}
