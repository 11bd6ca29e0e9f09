"""The documentation benchmark's scoring on tiny synthetic cases: what counts as a passage that
contains the answer, file hits, the cited section and page checks, the question file's rules,
the gold checker on HTML, and unpacking manuals from a .deb built here."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from ragkb.eval.debcorpus import DocPackage, extract
from ragkb.eval.docbench import Hit, Question, answer_rank, contains, heading_key, load_questions, score_question, summarise
from ragkb.eval.docgold import check_html

PDF_Q = Question(
    id="p1", question="How long may a package name be?", style="paraphrased", file="guide/manual.pdf",
    section="Package name and version", evidence="equal or less than 30 characters", page_label="34", page=43,
)
HTML_Q = Question(
    id="h1", question="Which port?", style="literal", file="web/listen.html", section="TCP Port", evidence="accept connections on port 9090",
)


def test_evidence_matches_across_spacing_quotes_case_and_markup_but_not_a_partial_span() -> None:
    assert contains("Keep it\nequal  or less than 30\tcharacters; and", PDF_Q.evidence)
    assert contains("If you leave “Section: unknown” unchanged", 'if you leave "section: unknown" UNCHANGED')
    assert contains("<p>accept connections on <code>port&nbsp;9090</code></p>", HTML_Q.evidence)
    assert not contains("equal or less than 30", PDF_Q.evidence)
    assert not contains("equal or less than 24 characters", PDF_Q.evidence)


def test_answer_passage_is_one_passage_of_the_gold_file_holding_all_the_evidence() -> None:
    halves = [Hit("guide/manual.pdf", "keep it equal or less"), Hit("guide/manual.pdf", "than 30 characters")]
    elsewhere = Hit("other/copy.pdf", "equal or less than 30 characters")
    whole = Hit("guide/manual.pdf", "names: equal or less than 30 characters.")
    assert answer_rank(PDF_Q, halves) is None
    assert answer_rank(PDF_Q, [elsewhere]) is None
    assert answer_rank(PDF_Q, [*halves, elsewhere, whole]) == 4
    assert answer_rank(PDF_Q, [*halves, elsewhere, Hit("x", "y"), Hit("x", "y"), whole]) is None  # rank 6: outside the top 5


def test_headings_compare_without_numbering_breadcrumbs_leaders_or_case() -> None:
    assert heading_key("5.4 Package name and version") == heading_key("Package name and version")
    assert heading_key("Basics > 5.4. Package Name and Version . . .") == "package name and version"
    assert heading_key("A.2 Tips:") == "tips"
    assert heading_key("debmake -j") == "debmake -j"
    assert heading_key("Note") != heading_key("Package name and version")
    assert heading_key(None) == ""


def test_scores_file_hits_and_the_cited_passage_section_and_printed_page() -> None:
    hits = [
        Hit("guide/other.pdf", "unrelated", "Intro", 3),
        Hit("guide/manual.pdf", "equal or less than 30 characters", "Note", 43),
    ]
    row = score_question(PDF_Q, hits, cites=True)
    assert (row["file_hit@1"], row["file_hit@5"], row["answer_rank"]) == (False, True, 2)
    assert row["section_correct"] is False  # an admonition label is not the section
    assert row["page_correct"] is False and row["physical_page_correct"] is True  # 43 is physical; printed is 34
    assert row["cited_page"] == "43"  # no label: the citation shows the physical number
    cited = score_question(PDF_Q, [Hit("guide/manual.pdf", "equal or less than 30 characters", "5.4 Package name and version", 43, "34")], cites=True)
    assert cited["section_correct"] and cited["page_correct"] and cited["physical_page_correct"]
    assert cited["cited_page"] == "34"
    baseline = score_question(PDF_Q, hits, cites=False)
    assert "section_correct" not in baseline and baseline["answer_rank"] == 2
    html_row = score_question(HTML_Q, [Hit("web/listen.html", "Accept connections on port 9090.", "TCP Port", None)], cites=True)
    assert html_row["section_correct"] and "page_correct" not in html_row


def test_summary_splits_by_style_and_format_and_counts_section_over_cited_passages_only() -> None:
    rows = [
        score_question(PDF_Q, [Hit("guide/manual.pdf", "equal or less than 30 characters", "Package name and version", 34)], cites=True),
        score_question(HTML_Q, [Hit("web/other.html", "port 9090")], cites=True),
    ]
    summary = summarise([PDF_Q, HTML_Q], rows)
    assert summary["all"] == {
        "questions": 2, "file_hit@1": 0.5, "file_hit@5": 0.5, "passage@5": 0.5,
        "cited": 1, "section_correct": 1.0, "page_correct": 1.0, "physical_page_correct": 0.0,
    }
    assert summary["paraphrased"]["passage@5"] == 1.0 and summary["literal"]["passage@5"] == 0.0
    assert summary["html"]["file_hit@5"] == 0.0 and "section_correct" not in summary["html"]


def test_question_file_rules(tmp_path: Path) -> None:
    good = {"id": "h1", "question": "q", "style": "literal", "file": "a.html", "section": "S", "evidence": "e"}
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(good) + "\n\n")
    assert load_questions(path)[0].format == "html"
    for bad in ({**good, "style": "vague"}, {**good, "file": "a.pdf"}, {**good, "gold": "x"}):
        path.write_text(json.dumps(bad) + "\n")
        with pytest.raises(ValueError):
            load_questions(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(ValueError, match="duplicate"):
        load_questions(path)


def test_html_gold_check_finds_the_heading_above_the_evidence_skipping_admonition_labels(tmp_path: Path) -> None:
    page = tmp_path / "listen.html"
    page.write_text(
        "<h2>TCP Port</h2><p>Cockpit will accept connections on <b>port 9090</b>.</p>"
        "<h3 class='title'>Warning</h3><p>Never assume the host is predictable.</p><h2>SELinux</h2><p>semanage</p>"
    )
    assert check_html(HTML_Q, page) == []
    warning = Question(**{**HTML_Q.__dict__, "evidence": "Never assume the host is predictable."})
    assert check_html(warning, page) == []
    assert check_html(Question(**{**HTML_Q.__dict__, "section": "SELinux"}), page) == ["evidence sits under 'TCP Port', not 'SELinux'"]
    assert check_html(Question(**{**HTML_Q.__dict__, "evidence": "port 9091"}), page) == ["evidence not in the file"]
    page.write_text(page.read_text() + "<p>We accept connections on port 9090 too.</p>")
    assert check_html(HTML_Q, page) == ["evidence occurs more than once in the file: a citation of either would be right"]


def _deb(path: Path, files: dict[str, bytes]) -> Path:
    """A minimal Debian package: an ar archive with debian-binary and data.tar.xz."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    members = [(b"debian-binary", b"2.0\n"), (b"data.tar.xz", data.getvalue())]
    out = b"!<arch>\n"
    for name, blob in members:
        out += name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8) + str(len(blob)).encode().ljust(10) + b"`\n"
        out += blob + (b"\n" if len(blob) % 2 else b"")
    path.write_bytes(out)
    return path


def test_extract_takes_only_the_manual_files_and_gunzips_them(tmp_path: Path) -> None:
    import gzip

    deb = _deb(tmp_path / "doc.deb", {
        "usr/share/doc/x/guide.pdf.gz": gzip.compress(b"%PDF-1.4 fake"),
        "usr/share/doc/x/html/a.html": b"<p>a</p>",
        "usr/share/doc/x/changelog.gz": b"skip",
    })
    package = DocPackage("x-doc", "1", "0" * 64, ("usr/share/doc/x/*.pdf.gz", "usr/share/doc/x/html/*.html"), "usr/share/doc/x/", "x")
    written = extract(package, deb, tmp_path / "corpus")
    assert sorted(p.relative_to(tmp_path / "corpus").as_posix() for p in written) == ["x/guide.pdf", "x/html/a.html"]
    assert (tmp_path / "corpus/x/guide.pdf").read_bytes() == b"%PDF-1.4 fake"
