"""Text of HTML nested deeper than libxml2 allows, where unstructured would lose it.

libxml2 (under lxml, under unstructured) stops building the tree at 256 levels of nesting
and unstructured then silently drops everything at that depth and after it: a page of
machine-generated markup lost all its text as "no text could be extracted". Such pages go
through the standard library's event parser instead, which keeps no tree and so has no
depth limit; headings, list items and paragraphs are still told apart.
"""

from __future__ import annotations

from html.parser import HTMLParser

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_SKIP = {"script", "style", "noscript", "template", "head", "svg"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCKS = _HEADINGS | {
    "p", "div", "li", "tr", "br", "section", "article", "table", "ul", "ol", "pre", "blockquote",
    "header", "footer", "main", "nav", "aside", "dd", "dt", "dl", "figure", "figcaption", "form",
    "address", "caption", "hr", "body",
}  # fmt: skip
LIBXML2_MAX_DEPTH = 255


def too_deep_for_lxml(text: str) -> bool:
    """True when libxml2 would stop at its depth limit (the tree unstructured works on)."""
    from lxml import etree

    parser = etree.HTMLParser(remove_comments=True, remove_pis=True, encoding="utf-8")
    try:
        etree.fromstring(text.encode("utf-8", errors="replace"), parser)
    except (etree.LxmlError, ValueError):
        pass
    return any("Excessive depth" in entry.message for entry in parser.error_log)


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[tuple[str, str]] = []
        self.depth = self.max_depth = 0
        self._skip = 0
        self._parts: list[str] = []
        self._kind = "text"

    def _flush(self) -> None:
        text = " ".join("".join(self._parts).split())
        if text:
            self.items.append((self._kind, text))
        self._parts = []
        self._kind = "text"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            self.depth += 1
            self.max_depth = max(self.max_depth, self.depth)
        if tag in _SKIP:
            self._skip += 1
        if tag in _BLOCKS:
            self._flush()
            self._kind = "title" if tag in _HEADINGS else "list" if tag == "li" else "text"
        elif tag in ("td", "th"):
            self._parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID:
            self.depth = max(0, self.depth - 1)
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        if tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._parts.append(data)


def html_items(text: str) -> tuple[list[tuple[str, str]], int]:
    """(kind, text) in reading order, kind title/list/text; and the deepest nesting seen."""
    extractor = _Extractor()
    extractor.feed(text)
    extractor.close()
    extractor._flush()
    return extractor.items, extractor.max_depth
