"""What unstructured should see of an HTML page: the page's own text, in blocks that keep a
fact with its subject.

Manual generators (Sphinx, DocBook, Doxygen, MkDocs, Texinfo, Publican) wrap every page in the
same furniture: navigation bars, sidebars, breadcrumbs, footers, in-page tables of contents.
Indexed, it is the same chunk once per page and wins searches it has nothing to say about.
unstructured drops only <nav> (and <header>/<footer> on request); its elements carry no class
or role, so furniture cannot be told from content afterwards (a DocBook navigation bar is a
<table> and comes out as a Table). The HTML is therefore rewritten with lxml before
unstructured sees it, where class, role and nesting are still known:

- furniture is removed: nav/footer/aside-like elements, navigation roles, the generators'
  classes, Sphinx's "¶" heading anchors;
- an admonition's title ("Note", "Warning", …) is not a heading: it becomes the prefix of its
  first paragraph ("Note: …"), so its text stays in the enclosing section;
- a definition-list term and the prose of its description become one paragraph
  ("term: description"), so "The default is one minute" is never split from the parameter
  it is about.
"""

from __future__ import annotations

from lxml import etree

ADMONITION_WORDS = frozenset({
    "note", "tip", "hint", "warning", "caution", "important", "attention", "danger", "see also", "seealso",
})  # fmt: skip
# Generator classes that are furniture whatever they hold: Sphinx, Read the Docs, DocBook,
# Publican, Doxygen, MkDocs (Material), Texinfo, and common breadcrumb/nav names.
_FURNITURE_CLASSES = frozenset({
    "related", "sphinxsidebar", "sphinxsidebarwrapper", "headerlink", "toctree-wrapper", "mobile-nav",
    "wy-nav-side", "wy-nav-top", "wy-breadcrumbs", "rst-versions", "rst-footer-buttons",
    "navheader", "navfooter", "toc", "list-of-tables", "list-of-figures", "list-of-examples", "docnav",
    "navpath", "md-header", "md-footer", "md-sidebar", "md-tabs", "nav-panel",
    "breadcrumb", "breadcrumbs", "navbar", "footer", "skip-link", "skiplink", "pagination",
})  # fmt: skip
_FURNITURE_IDS = frozenset({
    "nav", "navigation", "navbar", "breadcrumb", "breadcrumbs", "footer", "side-nav", "nav-path", "titlearea",
})  # fmt: skip
_FURNITURE_ROLES = frozenset({"navigation", "contentinfo", "search", "doc-toc"})
# Names that are furniture only when the element is mostly links: Doxygen wraps a whole
# page in <div class="contents">, docutils' HTML5 writer puts footnotes and admonitions in
# <aside>, a <header> may hold the page's own title.
_LINK_LIST_CLASSES = frozenset({"contents", "menu", "sidebar"})
_LINK_LIST_TAGS = frozenset({"aside", "header"})
_LINK_LIST_ROLES = frozenset({"complementary", "banner"})
_LINK_DENSITY = 0.7
_PROTECTED = frozenset({"html", "body", "main", "article"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_TITLE_TAGS = _HEADINGS | {"p", "div", "th", "td", "dt", "caption"}
_TEXT_BLOCKS = ("p", "div", "dt", "dd", "li", "td", "pre")
_BOXES = frozenset({"div", "aside", "section", "dl", "blockquote", "table"})
_BLOCK_TAGS = _HEADINGS | _BOXES | set(_TEXT_BLOCKS) | {"pre", "ul", "ol", "figure", "img", "hr", "br"}
# A long description is cut into groups of whole paragraphs, each starting with the term again,
# so that no fact of it reaches a chunk without its subject; well under the default chunk
# budget (180 words), so a group and its section heading share one chunk.
_GROUP_WORDS = 120
_PROSE_BLOCKS = frozenset({"p", "div", "section", "aside", "address", "center"})
# Inside a description these keep their own lines and structure (code, tables, lists).
_STRUCTURED = _HEADINGS | {"pre", "table", "dl", "ul", "ol", "blockquote", "figure", "img"}


def prepare_html(text: str) -> str:
    """The page with furniture removed, admonitions folded and definitions joined; the page
    unchanged when it has no body text at all without its furniture (a page that is nothing but
    navigation is indexed as it is rather than reported unreadable)."""
    parser = etree.HTMLParser(remove_comments=True, remove_pis=True, encoding="utf-8")
    try:
        root = etree.fromstring(text.encode("utf-8", errors="replace"), parser)
    except (etree.LxmlError, ValueError):
        return text
    if root is None:
        return text
    for element in [e for e in root.iter() if isinstance(e.tag, str) and _is_furniture(e)]:
        _drop(element)
    body = root.find(".//body")
    if not _words(body if body is not None else root):
        return text
    for title, word in _admonition_titles(root):
        _fold_admonition(title, word)
    for dl in list(root.iter("dl")):
        _join_definitions(dl)
    for element in list(root.iter("dl", "dt", "dd")):
        element.tag = "div"  # unstructured would make each description a list item
    return etree.tostring(root, encoding="unicode", method="html")


def _drop(element: etree._Element) -> None:
    """Remove an element but not the text that follows it (its tail belongs to the parent)."""
    parent = element.getparent()
    if parent is None:
        return
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def _words(element: etree._Element) -> str:
    return " ".join("".join(element.itertext()).split())


def _short_text(element: etree._Element, limit: int = 24) -> str:
    """The element's text when it is at most `limit` characters, else "": looking for a title
    word must not join the text of every enclosing <div> of a large page."""
    size = 0
    parts = []
    for part in element.itertext():
        size += len(part.strip())
        if size > limit:
            return ""
        parts.append(part)
    return " ".join("".join(parts).split())


def _tokens(value: str | None) -> set[str]:
    return set((value or "").lower().split())


def _is_furniture(element: etree._Element) -> bool:
    tag = element.tag.lower()
    if tag in _PROTECTED:
        return False
    classes = _tokens(element.get("class"))
    role = (element.get("role") or "").lower()
    if (
        tag in ("nav", "footer")
        or classes & _FURNITURE_CLASSES
        or (element.get("id") or "").lower() in _FURNITURE_IDS
        or role in _FURNITURE_ROLES
        or "breadcrumb" in (element.get("aria-label") or "").lower()
        or ("contents" in classes and "topic" in classes)  # docutils' local table of contents
    ):
        return True
    if tag in _LINK_LIST_TAGS or role in _LINK_LIST_ROLES or classes & _LINK_LIST_CLASSES:
        return _mostly_links(element)
    return False


def _mostly_links(element: etree._Element) -> bool:
    """True for a list of links (a table of contents, a site menu), false for prose that
    happens to sit in an ambiguous container."""
    text = len(_words(element))
    links = sum(len(_words(a)) for a in element.iter("a"))
    return text == 0 or links >= _LINK_DENSITY * text


def _admonition_titles(root: etree._Element) -> list[tuple[etree._Element, str]]:
    """Innermost blocks whose whole text is an admonition word, with the word as written. A
    table cell counts only inside a box named as an admonition (DocBook's graphical layout):
    elsewhere "Warning" in a cell is data, such as a log level."""
    found = []
    for element in root.iter(*_TITLE_TAGS):
        word = _short_text(element).rstrip(":").strip()
        if word.lower() not in ADMONITION_WORDS:
            continue
        if any(child.tag in _TITLE_TAGS and _short_text(child).rstrip(":").strip() == word for child in element):
            continue  # <div><p>Note</p></div>: the inner block is the title
        if element.tag in ("th", "td") and _named_box(element) is None:
            continue
        found.append((element, word))
    return found


def _fold_admonition(title: etree._Element, word: str) -> None:
    """Remove the title; its word becomes the prefix of the admonition's first text."""
    following_sibling = title.getnext()
    inline_next = following_sibling is not None and following_sibling.tag not in _BLOCK_TAGS
    if (title.tail and title.tail.strip()) or inline_next:  # the text runs on right after the title
        title.tail = f"{word}: {(title.tail or '').lstrip()}"
        _drop(title)  # keeps the text after it
        return
    box = _named_box(title)
    table = next(title.iterancestors("table"), None)
    layout = table if box is not None and table is not None and box in table.iterancestors() else None
    parent = title.getparent()
    following = _after(box if box is not None else parent, title) if parent is not None else []
    _drop(title)
    if layout is not None:
        _unwrap_layout_table(layout)
    target = next((e for e in following if _words(e)), None)
    if target is None:
        return
    while not (target.text and target.text.strip()):
        first = next((c for c in target if isinstance(c.tag, str)), None)
        if first is None or first.tag not in _TEXT_BLOCKS:
            break
        target = first
    target.text = f"{word}: {(target.text or '').lstrip()}"


def _named_box(title: etree._Element) -> etree._Element | None:
    """The nearest ancestor whose class names an admonition (Sphinx `admonition note`,
    DocBook `note`, Doxygen `section note`)."""
    for ancestor in title.iterancestors():
        if ancestor.tag in _PROTECTED:
            return None
        classes = _tokens(ancestor.get("class"))
        if ancestor.tag in _BOXES and (classes & ADMONITION_WORDS or "admonition" in classes):
            return ancestor
    return None


def _after(box: etree._Element, title: etree._Element) -> list[etree._Element]:
    """Text blocks of `box` after `title`, in reading order."""
    seen = False
    following = []
    for element in box.iter():
        if element is title:
            seen = True
        elif seen and element.tag in _TEXT_BLOCKS and title not in element.iterancestors():
            following.append(element)
    return following


def _unwrap_layout_table(table: etree._Element) -> None:
    """DocBook's graphical admonitions lay out icon, title and text in a table; unstructured
    would index the text as a one-cell table. The cells' content replaces the table."""
    holder = etree.Element("div")
    for cell in table.iter("td", "th"):
        if not _words(cell):
            continue
        wrapper = etree.SubElement(holder, "div")
        wrapper.text = cell.text
        wrapper.extend(list(cell))
    holder.tail = table.tail
    parent = table.getparent()
    if parent is not None:
        parent.replace(table, holder)


def _join_definitions(dl: etree._Element) -> None:
    """Each run of <dt> terms goes into the prose of its <dd> ("term: description")."""
    terms: list[etree._Element] = []
    for child in list(dl):
        if child.tag == "dt":
            terms.append(child)
        elif child.tag == "dd" and terms:
            term = ", ".join(t for t in (_term_text(dt) for dt in terms) if t)
            for dt in terms:
                _drop(dt)
            terms = []
            if term:
                _prefix_description(child, term)


def _term_text(dt: etree._Element) -> str:
    for br in dt.iter("br"):
        br.tail = ", " + (br.tail or "")  # DocBook puts option spellings on lines of one term
    return _words(dt).strip(", ").rstrip(":")  # docutils field names end in ":" already


def _prefix_description(box: etree._Element, term: str, top: bool = True) -> None:
    """The description's prose, in groups of whole paragraphs of at most `_GROUP_WORDS` words,
    each group one paragraph starting "term: ". Code, tables and lists stay where they were; a
    container holding some (an admonition with an example) gets the same treatment inside."""
    paragraphs: list[str] = [box.text or ""]  # the run of prose since the last structured child
    items: list[etree._Element | list[str]] = [paragraphs]
    box.text = None
    for child in list(box):
        tail, child.tail = child.tail or "", None
        box.remove(child)
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag in _STRUCTURED or (tag and any(True for _ in child.iter(*_STRUCTURED))):
            if tag not in _STRUCTURED:
                _prefix_description(child, term, top=False)
            paragraphs = [tail]
            items += [child, paragraphs]
        elif tag in _PROSE_BLOCKS:
            paragraphs += ["".join(child.itertext()), tail]  # a paragraph; the text after it is another
        elif tag:  # inline markup continues the paragraph it is in
            paragraphs[-1] += "".join(child.itertext()) + tail
    if top and not any(isinstance(item, list) and "".join(item).strip() for item in items):
        etree.SubElement(box, "p").text = f"{term}:"  # only code, a list or a table follows
    for item in items:
        if not isinstance(item, list):
            box.append(item)
            continue
        for group in _groups([" ".join(p.split()) for p in item if p.strip()]):
            etree.SubElement(box, "p").text = f"{term}: {group}"


def _groups(paragraphs: list[str]) -> list[str]:
    """Consecutive paragraphs joined while the group stays within `_GROUP_WORDS` words."""
    groups: list[str] = []
    for paragraph in paragraphs:
        if groups and len(groups[-1].split()) + len(paragraph.split()) <= _GROUP_WORDS:
            groups[-1] = f"{groups[-1]} {paragraph}"
        else:
            groups.append(paragraph)
    return groups
