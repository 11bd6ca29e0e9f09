"""HTML manuals parse into their own text: no navigation, tables of contents or footers as
chunks, admonition titles ("Note") never taken for the section, and a definition term kept
with its description. Real pages from Debian packages (tests/fixtures/html/SOURCES.md): a
DocBook manual (PostgreSQL), a DocBook manual with graphical admonitions (aptitude), and a
Sphinx manual (Python)."""

from __future__ import annotations

from pathlib import Path

from ragkb.chunk import Chunk, chunk_blocks
from ragkb.config import Settings
from ragkb.parse import Block, parse_file

HTML = Path(__file__).parent / "fixtures" / "html"
PG_CONNECTION = HTML / "postgresql-runtime-config-connection.html"
PG_AUTOVACUUM = HTML / "postgresql-runtime-config-autovacuum.html"
SPHINX_GETOPT = HTML / "python-library-getopt.html"
APTITUDE = HTML / "aptitude-ch02.html"


def _chunks(path: Path, settings: Settings) -> list[Chunk]:
    return chunk_blocks(parse_file(path, settings), settings.chunk_words, settings.chunk_overlap_words)


def _chunk_with(chunks: list[Chunk], text: str) -> Chunk:
    found = [c for c in chunks if text in " ".join(c.text.split())]
    assert len(found) == 1, f"{text!r} in {len(found)} chunks"
    return found[0]


def test_docbook_navigation_bars_and_table_of_contents_are_not_blocks(settings: Settings) -> None:
    blocks = parse_file(PG_CONNECTION, settings)
    words = [set(b.text.split()) for b in blocks]
    assert not [b.text for b, w in zip(blocks, words) if {"Prev", "Next"} <= w or {"Up", "Home"} <= w]
    # the page's table of contents listed each subsection as a text block before its heading
    for heading in ("20.3.1. Connection Settings", "20.3.2. Authentication", "20.3.3. SSL"):
        assert [b.kind for b in blocks if b.text == heading] == ["title"]
    assert blocks[0] == Block("20.3. Connections and Authentication", None, "20.3. Connections and Authentication", "title")
    assert all(b.section is not None for b in blocks)


def test_sphinx_sidebar_related_bar_footer_and_pilcrows_are_not_indexed(settings: Settings) -> None:
    blocks = parse_file(SPHINX_GETOPT, settings)
    text = "\n".join(b.text for b in blocks)
    for furniture in ("Navigation", "Previous topic", "Next topic", "Report a Bug", "Show Source",
                      "Python »", "Copyright", "Table of Contents", "¶"):  # fmt: skip
        assert furniture not in text
    assert {b.section for b in blocks} == {"getopt — C-style parser for command line options"}
    assert "GetoptError" in text and "Using long option names is equally easy:" in text


def test_admonition_title_is_a_prefix_not_the_section(settings: Settings) -> None:
    chunks = _chunks(PG_CONNECTION, settings)
    assert not [c for c in chunks if c.section and c.section.lower() in ("note", "tip", "warning", "caution")]
    windows = _chunk_with(chunks, "Note: On Windows, setting a value of 0 will set this parameter to 2 hours")
    assert windows.section == "20.3.1. Connection Settings"
    assert sum(" ".join(c.text.split()).count("Note: ") for c in chunks) == 5  # the page's five notes


def test_docbook_graphical_admonition_is_text_not_a_table(settings: Settings) -> None:
    blocks = parse_file(APTITUDE, settings)
    note = [b for b in blocks if "behavior and appearance can be configured" in b.text]
    assert len(note) == 1
    assert note[0].kind == "text" and note[0].text.startswith("Note: aptitude")
    assert note[0].section == "Chapter 2. aptitude reference guide"


def test_parameter_and_its_default_stay_in_one_chunk(settings: Settings) -> None:
    chunks = _chunks(PG_AUTOVACUUM, settings)
    naptime = _chunk_with(chunks, "The default is one minute (1min).")
    assert "autovacuum_naptime (integer): Specifies the minimum delay" in " ".join(naptime.text.split())
    connection = _chunks(PG_CONNECTION, settings)
    reserved = _chunk_with(connection, "The default value is three connections.")
    assert "superuser_reserved_connections (integer):" in reserved.text
    assert not [c for c in connection if c.text.strip() == "listen_addresses (string)"]


def test_every_description_paragraph_names_its_term(settings: Settings) -> None:
    """A description longer than a chunk is cut between paragraphs; each part names the term."""
    blocks = parse_file(PG_CONNECTION, settings)
    listen = [b.text for b in blocks if "listen_addresses" in b.text and "TCP/IP" in b.text]
    assert listen and all(text.startswith("listen_addresses (string): ") for text in listen)
    options = parse_file(SPHINX_GETOPT, settings)
    assert any(b.text.startswith("getopt.getopt(args, shortopts, longopts=[]): Parses command line options") for b in options)


def test_log_level_cell_named_warning_is_data(settings: Settings, tmp_path: Path) -> None:
    page = tmp_path / "levels.html"
    page.write_text(
        "<html><body><h1>Levels</h1><table><tr><th>Level</th><th>Value</th></tr>"
        "<tr><td>WARNING</td><td>30</td></tr><tr><td>ERROR</td><td>40</td></tr></table></body></html>"
    )
    table = [b for b in parse_file(page, settings) if b.kind == "table"]
    assert [b.text for b in table] == ["Level | Value\nWARNING | 30\nERROR | 40"]


def test_prose_in_an_ambiguous_container_is_kept(settings: Settings, tmp_path: Path) -> None:
    """Doxygen puts a whole page in <div class="contents">; docutils puts footnotes in <aside>."""
    page = tmp_path / "doxygen.html"
    page.write_text(
        '<html><body><div class="navpath"><a href="a.html">Project</a> <a href="b.html">Module</a></div>'
        '<div class="contents"><h2>Detailed Description</h2><p>The ring buffer holds at most 4096 entries.</p>'
        '<aside class="footnote"><p>Entries are 64 bytes each, see <a href="#x">the layout</a>.</p></aside>'
        "</div></body></html>"
    )
    text = [b.text for b in parse_file(page, settings)]
    assert "The ring buffer holds at most 4096 entries." in text
    assert "Entries are 64 bytes each, see the layout." in text
    assert not [t for t in text if "Project" in t]


def test_page_of_nothing_but_navigation_is_still_indexed(settings: Settings, tmp_path: Path) -> None:
    page = tmp_path / "menu.html"
    page.write_text('<html><body><div class="related"><a href="a.html">Installation guide</a></div></body></html>')
    assert [b.text for b in parse_file(page, settings)] == ["Installation guide"]
