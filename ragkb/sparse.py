"""BM25 as Qdrant sparse vectors, so keyword and dense search run in one Qdrant query.

Documents store the BM25 term-frequency part; Qdrant's IDF modifier supplies the inverse
document frequency from the live collection, so adding documents never requires re-indexing.
Token ids are a stable 32-bit hash: no vocabulary file to keep in sync across runs.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import lru_cache

import snowballstemmer

# Lucene/Anserini BM25 parameters used for the BEIR baselines.
K1 = 0.9
B = 0.4
# Average chunk length in tokens after stop-word removal; chunks are bounded by size, so a
# constant stands in for the corpus average without a second pass over the collection.
AVG_DOC_TOKENS = 100.0

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_STOPWORDS = frozenset(
    """a an and are as at be but by for if in into is it no not of on or such that the their then
    there these they this to was will with from has have had were been being do does did its i me
    my we our you your he him his she her them what which who whom than too very can just so""".split()
)
_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer.stemWord(word)


@lru_cache(maxsize=200_000)
def _token_id(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest(), "little")


def tokenize(text: str) -> list[str]:
    return [_stem(word) for word in _TOKEN.findall(text.lower()) if word not in _STOPWORDS]


def document_vector(text: str) -> tuple[list[int], list[float]]:
    tokens = tokenize(text)
    if not tokens:
        return [], []
    norm = K1 * (1 - B + B * len(tokens) / AVG_DOC_TOKENS)
    weights: dict[int, float] = {}
    for token, tf in Counter(tokens).items():
        index = _token_id(token)
        weights[index] = weights.get(index, 0.0) + tf * (K1 + 1) / (tf + norm)
    return list(weights), list(weights.values())


def query_vector(text: str) -> tuple[list[int], list[float]]:
    counts = Counter(_token_id(token) for token in tokenize(text))
    return list(counts), [float(count) for count in counts.values()]
