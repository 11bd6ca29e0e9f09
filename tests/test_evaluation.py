"""Evaluation: metrics on hand-computed examples, and a tiny BEIR set through the real pipeline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragkb.config import Settings
from ragkb.eval.beir import load_beir, load_qrels
from ragkb.eval.metrics import evaluate_run, max_pool, mrr_at_k, ndcg_at_k, percentile, recall_at_k
from ragkb.eval.retrieval import evaluate_retrieval


# --- metrics -------------------------------------------------------------------------------------
def test_ndcg_graded_by_hand() -> None:
    judgements = {"a": 1, "c": 2, "d": 1}
    # DCG = 1/log2(2) + 0/log2(3) + 2/log2(4) = 1 + 0 + 1 = 2
    # IDCG = 2/log2(2) + 1/log2(3) + 1/log2(4) = 2 + 0.63093 + 0.5 = 3.13093
    assert ndcg_at_k(["a", "b", "c"], judgements, 10) == pytest.approx(2 / (2 + 1 / math.log2(3) + 0.5))
    assert ndcg_at_k(["c", "a", "d"], judgements, 10) == pytest.approx(1.0)
    # cut at k=1: DCG = 1, IDCG = 2 (the best single document has grade 2)
    assert ndcg_at_k(["a", "c"], judgements, 1) == pytest.approx(0.5)
    assert ndcg_at_k(["x", "y"], judgements, 10) == 0.0
    assert ndcg_at_k([], judgements, 10) == 0.0


def test_grade_zero_is_not_relevant() -> None:
    judgements = {"a": 0, "b": 1}
    assert mrr_at_k(["a", "b"], judgements, 10) == 0.5
    assert recall_at_k(["a"], judgements, 10) == 0.0
    assert ndcg_at_k(["a", "b"], judgements, 10) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["a"], {"a": 0}, 10) == 0.0  # no relevant document: 0, not a division by zero


def test_recall_and_mrr_by_hand() -> None:
    judgements = {"a": 1, "c": 1, "d": 1}
    assert recall_at_k(["a", "b", "c"], judgements, 2) == pytest.approx(1 / 3)
    assert recall_at_k(["a", "b", "c"], judgements, 3) == pytest.approx(2 / 3)
    assert mrr_at_k(["b", "x", "c"], judgements, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["b", "x", "c"], judgements, 2) == 0.0


def test_evaluate_run_averages_over_judged_queries() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 2, "c": 1}, "q3": {"z": 0}}  # q3 has nothing relevant: skipped
    run = {"q1": ["a"], "q2": ["x", "c"]}  # q2 finds c at rank 2
    scores = evaluate_run(run, qrels)
    q2_ndcg = (1 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert scores["ndcg@10"] == pytest.approx((1 + q2_ndcg) / 2, abs=1e-4)
    assert scores["recall@10"] == pytest.approx((1 + 0.5) / 2)
    assert scores["mrr@10"] == pytest.approx((1 + 0.5) / 2)
    missing = evaluate_run({"q1": ["a"]}, qrels)  # a query with no result counts as 0
    assert missing["mrr@10"] == pytest.approx(0.5)


def test_max_pool_merges_chunks_by_best_score() -> None:
    hits = [(["d1"], 0.9), (["d2"], 0.8), (["d1"], 0.7), (["d3", "d4"], 0.6), (["d2"], 0.95)]
    assert max_pool(hits) == ["d2", "d1", "d3", "d4"]


def test_percentile_matches_numpy_linear() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 25.0
    assert percentile(values, 95) == pytest.approx(38.5)
    assert percentile([7.0], 95) == 7.0


def test_load_qrels_skips_header(tmp_path: Path) -> None:
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\n1\t10\t1\n1\t11\t2\n2\t12\t0\n")
    assert load_qrels(path) == {"1": {"10": 1, "11": 2}, "2": {"12": 0}}


# --- a tiny BEIR dataset end to end --------------------------------------------------------------
DOCS = {
    "d1": ("Photosynthesis", "Plants convert sunlight, water and carbon dioxide into glucose and oxygen in chloroplasts."),
    "d2": ("Volcanoes", "Magma rises through the crust and erupts as lava, ash and volcanic gases."),
    "d3": ("Insulin", "The pancreas releases insulin, a hormone that lowers blood glucose by helping cells absorb sugar."),
    "d4": ("Black holes", "A black hole is a region of spacetime where gravity is so strong that not even light escapes."),
    "d5": ("Coffee", "Caffeine in coffee blocks adenosine receptors in the brain and reduces the feeling of tiredness."),
    "d6": ("Tides", "Ocean tides are caused by the gravitational pull of the Moon and the Sun on the Earth's water."),
    "d7": ("Vaccines", "Vaccines train the immune system to recognise a pathogen by exposing it to a harmless antigen."),
    "d8": ("Bread", "Yeast ferments sugars in dough, producing carbon dioxide bubbles that make bread rise."),
    "d9": ("Earthquakes", "Earthquakes happen when tectonic plates slip along faults and release stored elastic energy."),
    "d10": ("Antibiotics", "Penicillin kills bacteria by blocking the synthesis of their cell walls."),
}
QUERIES = {
    "q1": "How do plants turn light into sugar?",
    "q2": "Which hormone reduces blood sugar levels?",
    "q3": "What makes the sea level rise and fall twice a day?",
    "q4": "unjudged question about bread",
}
QRELS = [("q1", "d1", 1), ("q2", "d3", 2), ("q3", "d6", 1), ("q3", "d4", 0)]


def make_beir(root: Path) -> Path:
    root.mkdir(parents=True)
    with (root / "corpus.jsonl").open("w") as handle:
        for doc_id, (title, text) in DOCS.items():
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w") as handle:
        for qid, text in QUERIES.items():
            handle.write(json.dumps({"_id": qid, "text": text, "metadata": {}}) + "\n")
    (root / "qrels").mkdir()
    rows = "".join(f"{q}\t{d}\t{g}\n" for q, d, g in QRELS)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return root


def test_load_beir_keeps_judged_queries(tmp_path: Path) -> None:
    dataset = load_beir(make_beir(tmp_path / "tiny"))
    assert set(dataset.queries) == {"q1", "q2", "q3"}
    assert dataset.qrels["q3"] == {"d6": 1, "d4": 0}
    assert dataset.corpus_size() == 10
    assert next(dataset.records()) == ("d1", *DOCS["d1"])
    with pytest.raises(FileNotFoundError):
        load_beir(tmp_path)


def test_tiny_beir_end_to_end(tmp_path: Path, embedder) -> None:
    data = make_beir(tmp_path / "tiny")
    settings = Settings(home=tmp_path / "home", chunk_words=100_000)
    report = evaluate_retrieval(data, settings, embedder=embedder)
    assert report.ingest["added"] == 10 and report.chunks == 10 and report.queries == 3
    by_mode = {r.mode: r for r in report.results}
    assert set(by_mode) == {"dense", "sparse", "hybrid", "hybrid+rerank"}
    assert by_mode["hybrid+rerank"].metrics is None and "RAGKB_RERANKER_MODEL" in by_mode["hybrid+rerank"].note
    for mode in ("dense", "sparse", "hybrid"):
        metrics = by_mode[mode].metrics
        assert metrics is not None and set(metrics) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
        assert by_mode[mode].latency_ms["p50"] > 0
    # q3 ("sea level rise and fall") shares no keyword with the tides document: only the dense
    # side finds it, which is what hybrid adds over keywords.
    assert by_mode["sparse"].metrics["recall@10"] == pytest.approx(2 / 3, abs=1e-3)
    assert by_mode["dense"].metrics["recall@10"] == 1.0
    assert by_mode["hybrid"].metrics["recall@10"] == 1.0
    assert by_mode["dense"].metrics["mrr@10"] == 1.0  # each query's document ranks first
    assert by_mode["hybrid"].metrics["ndcg@10"] > 0.8
    # The manifest makes a rerun cheap: nothing is embedded again.
    again = evaluate_retrieval(data, settings, modes=("hybrid",), embedder=embedder)
    assert again.ingest["unchanged"] == 10 and again.ingest["chunks"] == 0
    assert again.results[0].metrics == by_mode["hybrid"].metrics


def test_chunked_documents_are_scored_once(tmp_path: Path, embedder) -> None:
    data = make_beir(tmp_path / "tiny")
    settings = Settings(home=tmp_path / "home", chunk_words=8, chunk_overlap_words=0)
    report = evaluate_retrieval(data, settings, modes=("hybrid",), embedder=embedder)
    assert report.chunks > 10  # documents were split...
    metrics = report.results[0].metrics
    assert metrics is not None and metrics["recall@10"] == 1.0  # ...and merged back to 10 documents
    assert metrics["mrr@10"] >= 0.5


def test_cli_retrieval_json(tmp_path: Path, embedder) -> None:
    from ragkb.eval.cli import eval_app

    data = make_beir(tmp_path / "tiny")
    result = CliRunner().invoke(
        eval_app,
        ["retrieval", "--dataset", str(data), "--home", str(tmp_path / "home"), "--modes", "sparse,hybrid,rerank", "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["collection"] == "beir-tiny-minilm-whole"
    modes = {r["mode"]: r for r in report["results"]}
    assert modes["hybrid"]["metrics"]["recall@10"] == 1.0
    assert modes["hybrid+rerank"]["metrics"] is None
    bad = CliRunner().invoke(eval_app, ["retrieval", "--dataset", str(tmp_path), "--home", str(tmp_path / "h2")])
    assert bad.exit_code == 2


# --- answer citations on a tiny SQuAD-format file ------------------------------------------------
def test_answers_cite_gold_passage(tmp_path: Path, embedder) -> None:
    from ragkb.eval.answers import evaluate_answers

    paragraphs = [
        ("We keep your email address for 30 days after you close your account.", "How long is my email kept?", "30 days"),
        ("Cookies are used to remember your language and to measure site traffic.", "What are cookies used for?",
         "to remember your language"),
        ("You may ask us to delete your personal data by writing to privacy@example.com.",
         "How can I have my data deleted?", "writing to privacy@example.com"),
    ]
    data = {"version": "1", "data": [{"title": "example.com", "paragraphs": [
        {"context": context, "qas": [{"id": str(i), "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}]}
        for i, (context, q, a) in enumerate(paragraphs)
    ]}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data))
    settings = Settings(home=tmp_path / "home", ollama_url="http://127.0.0.1:9")
    report = evaluate_answers(path, settings, titles=1, questions=3, backends=("none", "ollama"), embedder=embedder, log=lambda m: None)
    assert report["passages"] == 3 and report["ingest"]["added"] == 3
    none = report["results"]["none"]
    assert none["questions"] == 3 and none["citations_include_gold"] == 1.0 and none["gold_in_retrieved_top_k"] == 1.0
    assert "unavailable" in report["results"]["ollama"]


def test_rerank_mode_orders_the_head_by_a_real_cross_encoder(tmp_path: Path, embedder) -> None:
    """No cross-encoder ships offline, so the test builds a real one: MiniLM's encoder with a
    fresh (seeded) regression head, saved as a sentence-transformers CrossEncoder folder and
    loaded through `reranker_model` exactly like an operator's model."""
    import torch
    from sentence_transformers import CrossEncoder

    from ragkb.eval.retrieval import doc_ids_by_content, run_queries
    from ragkb.retrieve import Retriever
    from ragkb.runtime import Runtime
    from ragkb.weights import embedding_choice

    torch.manual_seed(0)
    folder = tmp_path / "cross-encoder"
    minilm = str(embedding_choice(Settings(home=tmp_path)).path)
    CrossEncoder(minilm, num_labels=1, local_files_only=True, device="cpu").save(str(folder))

    data = make_beir(tmp_path / "tiny")
    settings = Settings(home=tmp_path / "home", chunk_words=100_000, reranker_model=folder)
    report = evaluate_retrieval(data, settings, modes=("hybrid",), embedder=embedder)
    question = QUERIES["q1"]
    with Runtime(settings, report.collection, embedder=embedder) as runtime:
        retriever = Retriever(runtime)
        doc_map = doc_ids_by_content(runtime)
        plain, _ = run_queries(retriever, {"q1": question}, doc_map, "hybrid", depth=10)
        run, latencies = run_queries(retriever, {"q1": question}, doc_map, "rerank", depth=10, rerank_depth=3)
        reranked = retriever.retrieve(question, top_k=3, mode="hybrid", rerank=True)
        # every hybrid candidate (the tiny corpus is within settings.rerank_candidates) is re-scored
        scores = runtime.reranker.predict([(question, " ".join(DOCS[doc])) for doc in plain["q1"]])
    expected_head = [doc for _, doc in sorted(zip(scores, plain["q1"]), key=lambda pair: -pair[0])][:3]
    assert len(latencies) == 1 and reranked.reranked and "rerank" in reranked.timings_ms
    assert run["q1"][:3] == expected_head  # the cross-encoder's best three, in its order
    assert run["q1"][3:] == [doc for doc in plain["q1"] if doc not in expected_head]  # then hybrid order
