"""`ragkb eval answers`: the answer metrics by hand, and a tiny end-to-end run with a question
the corpus cannot answer."""

from __future__ import annotations

import json
from pathlib import Path

from ragkb.config import Settings
from ragkb.eval.answers import answer_words, cited_sentences, evaluate_answers, gold_coverage, squad_tokens
from ragkb.retrieve import Passage


def _passage(text: str) -> Passage:
    return Passage("id", "doc", 0, "/kb/a.md", None, None, text, 1.0, "text", "md")


def test_squad_normalisation_and_gold_coverage():
    assert squad_tokens("The Cookies, [2] and an API!") == ["cookies", "and", "api"]
    assert gold_coverage("We use cookies and web beacons [1].", ("cookies and beacons",)) == 1.0
    assert gold_coverage("We use cookies [1].", ("cookies and beacons",)) == 1 / 3
    assert gold_coverage("We use cookies [1].", ("beacons", "use cookies")) == 1.0  # best gold span
    assert answer_words("We use cookies [1]. Really [2].") == 4


def test_cited_sentences_contained_and_supported():
    passages = [_passage("We use cookies and web beacons to count visits."), _passage("You may opt out at any time.")]
    answer = "We use cookies and web beacons to count visits [1]. Uncited here. You may opt out at any time [1]."
    assert cited_sentences(answer, passages) == (2, 1, 1)
    # a paraphrase is supported but not contained; an ellipsis cut still counts as contained
    assert cited_sentences("Cookies and web beacons count visits [1].", passages) == (1, 0, 1)
    assert cited_sentences("We use cookies and web beacons … [1].", passages) == (1, 1, 1)
    # a quoted list item ("... at any time;") and a quoted title are units of their own
    items = [_passage("You may opt out at any time; we keep a record of it."), _passage('See "How We Use Data?" below.')]
    assert cited_sentences('You may opt out at any time; [1]. See "How We Use Data?" [2].', items) == (2, 2, 2)


def test_answers_eval_end_to_end_with_unanswerable_questions(tmp_path: Path, embedder) -> None:
    policy = [
        "We collect your email address and your name when you register for an account.",
        "We use cookies to remember your preferences and to measure how our pages are used.",
        "You can ask us to delete your data by writing to privacy@example.com at any time.",
    ]
    questions = [("What information do you collect when I register?", "your email address and your name"),
                 ("Why do you use cookies?", "to remember your preferences"),
                 ("How can I have my data deleted?", "writing to privacy@example.com")]  # fmt: skip
    data = {"version": "1", "data": [{"title": "example.com", "paragraphs": [
        {"context": c, "qas": [{"id": str(i), "question": q, "answers": [{"text": a, "answer_start": c.index(a)}]}]}
        for i, (c, (q, a)) in enumerate(zip(policy, questions))
    ]}]}  # fmt: skip
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data))
    pubmed = tmp_path / "ori_pqal.json"
    pubmed.write_text(json.dumps({
        "1": {"QUESTION": "Do mitochondria play a role in remodelling lace plant leaves during programmed cell death?"},
        "2": {"QUESTION": "Is the Anterior cruciate ligament reconstruction effective in elite skiers?"},
    }))  # fmt: skip
    (tmp_path / "test_ground_truth.json").write_text(json.dumps({"1": "yes", "2": "no"}))
    settings = Settings(home=tmp_path / "home", ollama_url="http://127.0.0.1:9")
    report = evaluate_answers(
        path, settings, titles=1, questions=3, backends=("extractive", "none"), embedder=embedder,
        log=lambda m: None, unanswerable=pubmed, unanswerable_questions=2,
    )  # fmt: skip
    extractive, none = report["results"]["extractive"], report["results"]["none"]
    assert extractive["questions"] == 3 and extractive["unanswerable_questions"] == 2
    assert extractive["covered_80"] == 1.0 and extractive["answer_words"]["share_le_60"] == 1.0
    assert extractive["cited_sentences_contained"] == 1.0 and extractive["cited_sentences_supported"] == 1.0
    assert extractive["abstained_unanswerable"] == 1.0 and extractive["unanswerable_shown_as_answer"] == 0.0
    assert none["abstained_unanswerable"] == 0.0 and none["gold_in_retrieved_top_k"] == 1.0
    assert set(extractive["latency_ms"]) == {"p50", "p95", "mean"}
