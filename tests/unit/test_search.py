"""Ranked search: a symbol by its name, by a word of its docstring, by a camelCase or
snake_case part, and by exact text; results carry path, line range and snippet."""

from __future__ import annotations

from tether.workspace.scan import SourceFile
from tether.workspace.search import SearchIndex, terms
from tether.workspace.symbols import symbols_of

FILES = {
    "billing/invoice.py": '''"""Invoices."""

TAX_RATE = 0.2


def total_price(items):
    """Add up the items and apply the sales tax."""
    return sum(items) * (1 + TAX_RATE)


class InvoiceWriter:
    """Render an invoice as a printable document."""

    def write(self, invoice):
        return str(invoice)
''',
    "web/cart.ts": """export function addToCart(cart: string[], item: string): string[] {
  // keeps the cart immutable
  return [...cart, item];
}

export const cartTotal = (cart: number[]) => cart.reduce((a, b) => a + b, 0);
""",
    "cmd/main.go": """package main

// serveHTTP starts the listener on the configured port.
func serveHTTP(port int) error {
\treturn nil
}
""",
    "README.md": "# Shop\n\nThe shop sells things. Prices include tax.\n",
}


def index() -> SearchIndex:
    sources = [
        SourceFile(path, len(text), text, tuple(symbols_of(path, text)))
        for path, text in FILES.items()
    ]
    return SearchIndex(sources)


def test_terms_split_identifiers_but_keep_them_whole() -> None:
    assert list(terms("getHTTPResponse snake_case_name")) == [
        "gethttpresponse", "get", "http", "response",
        "snake_case_name", "snake", "case", "name",
    ]  # fmt: skip


def test_a_symbol_is_found_by_its_name() -> None:
    best = index().search("total_price")[0]
    assert (best.path, best.start_line, best.end_line, best.symbol) == (
        "billing/invoice.py", 6, 10, "total_price",
    )  # fmt: skip
    assert best.snippet.splitlines()[0] == "def total_price(items):"


def test_a_symbol_is_found_by_a_word_in_its_docstring() -> None:
    hits = index().search("printable")
    assert [(h.path, h.symbol) for h in hits] == [("billing/invoice.py", "InvoiceWriter")]
    assert hits[0].start_line == 11
    assert "printable document" in hits[0].snippet


def test_parts_of_camel_case_names_match() -> None:
    best = index().search("cart add")[0]
    assert (best.path, best.symbol) == ("web/cart.ts", "addToCart")


def test_exact_substring_ranks_first_even_for_non_words() -> None:
    hits = index().search("a + b")
    assert hits and (hits[0].path, hits[0].symbol) == ("web/cart.ts", "cartTotal")
    assert "a + b" in hits[0].snippet


def test_results_are_ranked_and_limited() -> None:
    hits = index().search("tax", limit=2)
    assert len(hits) == 2
    assert hits[0].score >= hits[1].score
    assert {h.path for h in hits} <= {"billing/invoice.py", "README.md"}
    assert index().search("nothing_like_this") == []


def test_to_json_is_what_the_tool_returns() -> None:
    hit = index().search("serveHTTP")[0]
    assert hit.to_json() == {
        "path": "cmd/main.go",
        "start_line": 4,
        "end_line": 6,
        "snippet": "func serveHTTP(port int) error {\n\treturn nil\n}",
        "score": round(hit.score, 3),
        "symbol": "serveHTTP",
    }
