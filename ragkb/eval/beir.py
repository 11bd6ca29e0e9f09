"""BEIR-format datasets (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) and published reference figures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragkb.eval.metrics import Qrels

# Published SciFact test nDCG@10 etc. (shared/data/REFERENCE_NUMBERS.md); keyed by dataset name.
REFERENCES: dict[str, list[dict[str, Any]]] = {
    "scifact": [
        {"system": "BM25 flat (Pyserini)", "ndcg@10": 0.6789, "recall@100": 0.9253},
        {"system": "BM25 multifield (Pyserini, ~BEIR paper)", "ndcg@10": 0.6647, "recall@100": 0.9076},
        {"system": "BM25 bm25s (MTEB baseline)", "ndcg@10": 0.6874},
        {"system": "all-MiniLM-L6-v2 (MTEB)", "ndcg@10": 0.6451, "recall@10": 0.7833, "recall@100": 0.925, "mrr@10": 0.6047},
        {"system": "bge-small-en-v1.5 (MTEB)", "ndcg@10": 0.7127, "recall@10": 0.8362, "recall@100": 0.945, "mrr@10": 0.6823},
        {"system": "bge-base-en-v1.5 (Pyserini)", "ndcg@10": 0.7408},
    ],
}


@dataclass
class BeirDataset:
    name: str
    path: Path
    corpus_path: Path
    queries: dict[str, str]
    qrels: Qrels
    split: str

    def records(self) -> Iterator[tuple[str, str, str]]:
        """(id, title, text) of every corpus document, streamed from corpus.jsonl."""
        with self.corpus_path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    doc = json.loads(line)
                    yield str(doc["_id"]), doc.get("title") or "", doc.get("text") or ""

    def corpus_size(self) -> int:
        with self.corpus_path.open(encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())


def load_qrels(path: Path) -> Qrels:
    """BEIR qrels TSV (query-id, corpus-id, score) with a header row; grade-0 rows are kept."""
    qrels: Qrels = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or (number == 0 and not parts[2].strip().lstrip("-").isdigit()):
                continue
            qrels.setdefault(parts[0].strip(), {})[parts[1].strip()] = int(parts[2])
    return qrels


def load_beir(path: Path, split: str = "test") -> BeirDataset:
    """A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv. Only judged queries are kept."""
    path = Path(path).expanduser().resolve()
    corpus = path / "corpus.jsonl"
    qrels_file = path / "qrels" / f"{split}.tsv"
    for required in (corpus, path / "queries.jsonl", qrels_file):
        if not required.is_file():
            raise FileNotFoundError(f"not a BEIR dataset folder: {required} is missing")
    qrels = {qid: docs for qid, docs in load_qrels(qrels_file).items() if any(g > 0 for g in docs.values())}
    queries: dict[str, str] = {}
    with (path / "queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                query = json.loads(line)
                if str(query["_id"]) in qrels:
                    queries[str(query["_id"])] = query["text"]
    missing = set(qrels) - set(queries)
    if missing:
        raise ValueError(f"{len(missing)} judged queries are not in queries.jsonl, e.g. {sorted(missing)[:3]}")
    return BeirDataset(path.name, path, corpus, queries, qrels, split)
