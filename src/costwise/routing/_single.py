"""Scoring one text with fitted scikit-learn parts, without scikit-learn's batch machinery.

A router decides one prompt at a time, on the request path. For a single text, scikit-learn's
``transform`` and ``predict_proba`` spend most of their time validating input and building
sparse matrices (~7 ms for the stacked router of two models); the arithmetic itself takes
microseconds. These helpers read the fitted parameters once and apply the same formulas to
one text: TF-IDF (counts, sublinear tf, idf, L2 norm), a linear model's logit, an SVD
projection, the nearest k-means centre. Results equal the batch path's to rounding
(``tests/test_learned_router.py`` compares them). Analyzers shared by several vectorizers
(one per model, fit on the same kind of text) run once per text.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

__all__ = ["Analyzed", "TfidfOne", "expit", "linear_logit", "logistic_one"]


def expit(x: float) -> float:
    """The logistic function, as scipy's ``expit`` computes it for one value."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


# The parameters that decide what a vectorizer's analyzer produces for a text.
_ANALYSIS = (
    "analyzer",
    "ngram_range",
    "lowercase",
    "token_pattern",
    "stop_words",
    "strip_accents",
    "preprocessor",
    "tokenizer",
    "encoding",
    "decode_error",
)


class TfidfOne:
    """One fitted ``TfidfVectorizer``, applied to one text: sorted indices and values."""

    __slots__ = ("analyze", "idf", "signature", "size", "sublinear", "vocabulary")

    def __init__(self, vectorizer: Any) -> None:
        import numpy as np

        if vectorizer.norm != "l2" or not vectorizer.use_idf or vectorizer.binary:
            msg = "TfidfOne supports l2-normalised TF-IDF with idf and counts (the defaults)"
            raise ValueError(msg)
        self.analyze = vectorizer.build_analyzer()
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.idf = np.asarray(vectorizer.idf_, dtype=np.float64)
        self.sublinear = bool(vectorizer.sublinear_tf)
        self.size = len(self.vocabulary)
        params = vectorizer.get_params()
        self.signature = repr([params.get(name) for name in _ANALYSIS])

    def __call__(self, counts: Mapping[str, int]) -> tuple[Any, Any]:
        """``(indices, values)`` of the TF-IDF row of a text's token counts, indices ascending."""
        import numpy as np

        vocabulary = self.vocabulary
        found = {}
        for token, n in counts.items():
            j = vocabulary.get(token)
            if j is not None:
                found[j] = n
        if not found:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float64)
        indices = np.fromiter(sorted(found), dtype=np.intp, count=len(found))
        values = np.fromiter(map(found.__getitem__, indices.tolist()), np.float64, len(found))
        if self.sublinear:
            np.log(values, out=values)
            values += 1.0
        values *= self.idf[indices]
        norm = math.sqrt(float(values @ values))
        if norm > 0:
            values /= norm
        return indices, values


class Analyzed:
    """One text and its analyzers' outputs, each computed once (see the module docstring)."""

    __slots__ = ("_counts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._counts: dict[str, Counter[str]] = {}

    def row(self, tfidf: TfidfOne) -> tuple[Any, Any]:
        """The text's TF-IDF row for `tfidf` (see `TfidfOne.__call__`)."""
        counts = self._counts.get(tfidf.signature)
        if counts is None:
            counts = self._counts[tfidf.signature] = Counter(tfidf.analyze(self.text))
        return tfidf(counts)


def linear_logit(
    coef: Any, intercept: float, parts: list[tuple[Any, Any]], offsets: list[int]
) -> float:
    """``intercept + coef · x`` for a sparse row given as parts placed at column offsets."""
    total = intercept
    for (indices, values), offset in zip(parts, offsets, strict=True):
        if len(indices):
            total += float(coef[indices + offset] @ values)
    return total


def logistic_one(model: Any, row: Any) -> float:
    """A fitted binary ``LogisticRegression``'s ``predict_proba(row)[0, 1]``, for one dense row."""
    return expit(float(model.coef_[0] @ row) + float(model.intercept_[0]))
