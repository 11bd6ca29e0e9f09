"""How a citation names its page: by the number printed on it, with the PDF's own page number
beside it when they differ.

A manual's page 20 in the PDF is often printed "12" (roman-numbered front matter, a cover);
a reader turning to "page 20" of the printed book, or typing 12 into a viewer that shows
labels, lands elsewhere. Saying both ("p. 12 (PDF page 20)") sends either reader to the text.
The CLI, the prompt and the UI all call this, so they never disagree.
"""

from __future__ import annotations


def page_reference(page: int | None, label: str | None = None) -> str:
    """'p. 12 (PDF page 20)' where the printed label differs from the position, 'page 20'
    otherwise; '' when the passage has no page (formats without pages)."""
    if page is None:
        return f"p. {label}" if label else ""
    if label and label != str(page):
        return f"p. {label} (PDF page {page})"
    return f"page {page}"


def short_page(page: int | None, label: str | None = None) -> str:
    """'p.12' for a citation chip: the printed number, which viewers that know labels accept."""
    shown = label or (str(page) if page is not None else "")
    return f"p.{shown}" if shown else ""
