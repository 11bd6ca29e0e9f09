"""The read path: retrieval finds the right file and page; answers cite only real passages."""

from __future__ import annotations

import pytest

from ollama_server import OllamaServer
from ragkb.answer import NO_ANSWER, Answerer, attribute_citations, check_citations
from ragkb.llm import resolve_backend
from ragkb.retrieve import Filters, Passage, Retriever


@pytest.fixture
def kb(settings, runtimes, docs):
    runtime = runtimes.runtime(settings)
    from ragkb.ingest import Ingestor

    Ingestor(runtime).run([docs])
    return settings, Retriever(runtime)


@pytest.mark.parametrize(
    ("question", "file", "page"),
    [
        ("How many bottles of wine were there?", "fake-memo.pdf", 1),
        ("How do I add a bullet slide?", "fake-power-point.pptx", 1),
        ("What are the important points in the test email? Roses are red", "fake-email.eml", None),
        ("What is the purpose of the handbook of the United States Trustee?", "handbook-1p.docx", 1),
    ],
)
def test_retrieval_returns_the_right_source(kb, question, file, page):
    _, retriever = kb
    best = retriever.retrieve(question, top_k=3).passages[0]
    assert best.source.endswith(file) and best.page == page


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
def test_every_search_mode_finds_the_memo(kb, mode):
    _, retriever = kb
    passages = retriever.retrieve("20,000 bottles of wine", top_k=2, mode=mode).passages
    assert passages[0].source.endswith("fake-memo.pdf")


def test_filters_restrict_by_type_and_folder(kb, docs, tmp_path):
    _, retriever = kb
    only_docx = retriever.retrieve("bottles of wine", top_k=10, filters=Filters(file_types=("docx",))).passages
    assert only_docx and all(p.source.endswith(".docx") for p in only_docx)
    assert retriever.retrieve("wine", filters=Filters(folder=str(tmp_path / "elsewhere"))).passages == []
    assert retriever.retrieve("wine", filters=Filters(folder=str(docs))).passages


def test_check_citations_removes_numbers_outside_the_context():
    answer, cited, warnings = check_citations("Twenty [1]. Thirty [4]. Both [1, 2].", 2)
    assert answer == "Twenty [1]. Thirty. Both [1][2]." and cited == [1, 2]
    assert warnings == ["removed citation [4]: no such passage in the context"]


def _passage(text: str) -> Passage:
    return Passage("id", "doc", 0, "/kb/a.md", None, None, text, 1.0, "text", "md")


def test_attribution_cites_copied_sentences_and_leaves_invented_ones():
    passages = [_passage("The office is open from 08:00 to 18:00 on weekdays."), _passage("Parents receive 20 weeks of paid parental leave.")]
    answer, notes = attribute_citations("Parents receive 20 weeks of paid leave. The moon is made of cheese.", passages)
    assert answer == "Parents receive 20 weeks of paid leave [2]. The moon is made of cheese."
    assert notes and "[2]" in notes[0]


def _answerer(settings, retriever, server: OllamaServer) -> Answerer:
    settings = settings.model_copy(update={"llm_backend": "ollama", "ollama_url": server.url})
    return Answerer(retriever.runtime.derive(settings, generator=resolve_backend(settings)))


def test_streamed_answer_over_ollama_cites_file_and_page(kb):
    settings, retriever = kb
    with OllamaServer(lambda messages: "There were 20,000 bottles of wine [1]. Also see [9].") as server:
        events = list(_answerer(settings, retriever, server).stream("How many bottles of wine were there?"))
        sent = server.requests_to("/api/chat")[0].body
    assert [e.kind for e in events][0] == "passages" and events[-1].kind == "done"
    assert sum(e.kind == "token" for e in events) > 3  # really streamed
    result = events[-1].result
    assert result.answer == "There were 20,000 bottles of wine [1]. Also see."
    assert result.citations[0].source.endswith("fake-memo.pdf") and result.citations[0].page == 1
    assert "20,000 bottles" in result.citations[0].text
    assert result.backend == "ollama:llama3.2:3b" and not result.flagged
    assert "removed citation [9]: no such passage in the context" in result.warnings
    assert set(result.timings_ms) >= {"retrieve", "generate", "total"}
    user = sent["messages"][-1]["content"]
    assert "[1] (fake-memo.pdf, page 1" in user and "How many bottles of wine" in user
    assert sent["options"]["temperature"] == 0


def test_answer_without_valid_citation_is_flagged(kb):
    settings, retriever = kb
    with OllamaServer(lambda messages: "Probably a lot of bottles, I think.") as server:
        result = _answerer(settings, retriever, server).ask("How many bottles of wine were there?")
    assert result.flagged and result.citations == [] and any("cites none" in w for w in result.warnings)


def test_i_dont_know_is_not_flagged(kb):
    settings, retriever = kb
    with OllamaServer(lambda messages: NO_ANSWER) as server:
        result = _answerer(settings, retriever, server).ask("What is the capital of Mongolia?")
    assert result.answer == NO_ANSWER and not result.flagged


def test_ollama_errors_reach_the_user(kb):
    settings, retriever = kb
    with OllamaServer(models=["other-model"]) as server:
        result = _answerer(settings, retriever, server).ask("How many bottles of wine were there?")
    assert result.flagged and any("ollama pull llama3.2:3b" in w for w in result.warnings)
    assert result.passages  # the retrieved sources are still shown


@pytest.mark.slow
def test_embedded_llamacpp_answers_end_to_end(kb):
    settings, retriever = kb
    settings = settings.model_copy(update={"llm_backend": "llamacpp", "max_answer_tokens": 60})
    events = list(Answerer(retriever.runtime.derive(settings)).stream("How many bottles of wine were there?"))
    result = events[-1].result
    assert sum(e.kind == "token" and bool(e.text) for e in events) > 0  # the model really generated
    assert result.backend.startswith("llamacpp:") and "generate" in result.timings_ms
    assert not any("llama.cpp" in w for w in result.warnings)
    assert result.passages[0].source.endswith("fake-memo.pdf")
    assert all(1 <= c.n <= len(result.passages) for c in result.citations)
