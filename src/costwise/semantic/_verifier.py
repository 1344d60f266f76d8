"""The precision layer: decide whether a close neighbour really asks the same question.

A cosine threshold alone cannot tell "hard laws in Spain" from "hard laws in China": the
vectors are 0.9 apart. The verifier adds cheap lexical evidence about the pair (different
numbers, different names, a negation on one side only, a different question word, how
much of the wording is shared) and combines it with the cosine in a logistic model fit on
labelled pairs. Its output is a probability-like score in [0, 1]; `calibrate` chooses the
score threshold that meets a target false-hit rate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from typing_extensions import override

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["FEATURES", "Verifier", "pair_features"]

_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019\-]*|\d+(?:[.,]\d+)*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NEGATIONS = _words(
    "not no never none nobody nothing nowhere neither nor cannot without "
    "dont don't doesnt doesn't isnt isn't arent aren't wasnt wasn't werent weren't "
    "cant can't couldnt couldn't wont won't wouldnt wouldn't shouldnt shouldn't "
    "didnt didn't hasnt hasn't havent haven't"
)
_QUESTION_WORDS = ("what", "how", "why", "when", "where", "who", "which", "whom", "whose")
_STOP = _words(
    "a an the of to in on for at by with from and or is are was were be been being am do "
    "does did i me my we our you your it its this that these those there their they them "
    "he she his her as if so than then can could should would will shall may might must "
    "have has had what how why when where who which whom whose about into over any some "
    "s get one more most best way ways"
)
_SUFFIXES = ("ing", "ed", "es", "s", "ly")

FEATURES: tuple[str, ...] = (
    "cosine",
    "log_distance",
    "content_jaccard",
    "char3_jaccard",
    "unshared_content",
    "number_mismatch",
    "name_mismatch",
    "negation_mismatch",
    "question_word_mismatch",
    "length_ratio",
    "cosine_x_jaccard",
    "identical",
)
"""Names of the pair features, in the order `pair_features` returns them."""


def _stem(word: str) -> str:
    # A crude suffix strip: "accepting"/"accept" and "schools"/"school" should count as shared.
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@dataclass(frozen=True, slots=True)
class _Parsed:
    lower: str
    content: frozenset[str]
    numbers: frozenset[str]
    names: frozenset[str]
    negated: bool
    question_word: str
    n_words: int
    trigrams: frozenset[str]


def _parse(text: str) -> _Parsed:
    words = _WORD.findall(text)
    lowered = [w.lower().replace("\u2019", "'") for w in words]
    content = frozenset(_stem(w) for w in lowered if w not in _STOP and not w[0].isdigit())
    # Capitalised tokens that are not sentence-initial are mostly names, places and products.
    names = frozenset(
        w.lower()
        for i, w in enumerate(words)
        if i > 0 and w[0].isupper() and w.lower() not in _STOP
    )
    numbers = frozenset(n.replace(",", "") for n in _NUMBER.findall(text))
    negations = sum(1 for w in lowered if w in _NEGATIONS or w.endswith("n't"))
    question = next((w for w in lowered if w in _QUESTION_WORDS), "")
    squashed = " ".join(lowered)
    trigrams = frozenset(squashed[i : i + 3] for i in range(max(len(squashed) - 2, 0)))
    return _Parsed(
        lower=squashed,
        content=content,
        numbers=numbers,
        names=names,
        negated=negations % 2 == 1,
        question_word=question,
        n_words=len(words),
        trigrams=trigrams,
    )


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def pair_features(a: str, b: str, cosine: float) -> list[float]:
    """The verifier's features of the pair (`a`, `b`) whose embeddings have `cosine`.

    Use it to inspect why a pair was accepted or rejected, or to fit your own model; the
    order is `FEATURES`.
    """
    pa, pb = _parse(a), _parse(b)
    jac = _jaccard(pa.content, pb.content)
    return [
        cosine,
        math.log(max(1.0 - cosine, 1e-4)),
        jac,
        _jaccard(pa.trigrams, pb.trigrams),
        float(min(len(pa.content ^ pb.content), 8)),
        float(pa.numbers != pb.numbers),
        float(min(len(pa.names ^ pb.names), 4)),
        float(pa.negated != pb.negated),
        float(pa.question_word != pb.question_word),
        min(pa.n_words, pb.n_words) / max(pa.n_words, pb.n_words, 1),
        cosine * jac,
        float(pa.lower == pb.lower),
    ]


class Verifier:
    """A logistic model over `pair_features`: P(the pair asks the same question).

    Use the one shipped in the default settings, or fit your own on labelled pairs from your
    traffic with :meth:`fit` (or through `calibrate`, which also picks the threshold). It is
    plain numpy at prediction time: a dot product over a dozen features, microseconds per
    candidate.

    Args:
        weights: one weight per feature in `FEATURES` order.
        bias: the intercept.
        mean: per-feature means used to standardise features before weighting.
        scale: per-feature standard deviations (same role).
    """

    __slots__ = ("bias", "mean", "scale", "weights")

    def __init__(
        self,
        *,
        weights: Sequence[float],
        bias: float,
        mean: Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
    ) -> None:
        n = len(FEATURES)
        self.weights = [float(w) for w in weights]
        self.mean = [float(m) for m in (mean or [0.0] * n)]
        self.scale = [float(s) or 1.0 for s in (scale or [1.0] * n)]
        self.bias = float(bias)
        if not len(self.weights) == len(self.mean) == len(self.scale) == n:
            msg = f"Verifier needs {n} weights, means and scales (one per feature)"
            raise ValueError(msg)

    def score_features(self, rows: Any) -> npt.NDArray[np.float64]:
        """Scores for a ``(n, len(FEATURES))`` feature matrix."""
        import numpy as np

        x = (np.asarray(rows, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        z = x @ np.asarray(self.weights) + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))), dtype=np.float64)

    def score(self, a: str, b: str, cosine: float) -> float:
        """P(same question) for one pair."""
        x = pair_features(a, b, cosine)
        z = self.bias + sum(
            w * (v - m) / s
            for w, v, m, s in zip(self.weights, x, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    @classmethod
    def fit(cls, features: Any, labels: Any, *, l2: float = 1.0, iterations: int = 200) -> Verifier:
        """Fit by L2-regularised logistic regression (Newton's method, numpy only).

        Args:
            features: ``(n, len(FEATURES))`` matrix from `pair_features`.
            labels: 1 for "same question", 0 otherwise.
            l2: ridge penalty on the standardised weights (not on the bias).
            iterations: the most Newton steps; it usually converges in under 15.
        """
        import numpy as np

        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        xs = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
        w = np.zeros(xs.shape[1])
        penalty = np.full(xs.shape[1], l2)
        penalty[-1] = 0.0
        for _ in range(iterations):
            p = 1.0 / (1.0 + np.exp(-np.clip(xs @ w, -50, 50)))
            grad = xs.T @ (p - y) + penalty * w
            hess = (xs * (p * (1 - p))[:, None]).T @ xs + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hess, grad)
            w -= step
            if float(np.abs(step).max()) < 1e-8:
                break
        return cls(
            weights=w[:-1].tolist(), bias=float(w[-1]), mean=mean.tolist(), scale=scale.tolist()
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (see :meth:`from_dict`)."""
        return {
            "features": list(FEATURES),
            "weights": self.weights,
            "bias": self.bias,
            "mean": self.mean,
            "scale": self.scale,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verifier:
        """Rebuild a verifier saved with :meth:`to_dict`."""
        if list(data.get("features", FEATURES)) != list(FEATURES):
            msg = "saved verifier was fit on a different feature set; re-run calibrate()"
            raise ValueError(msg)
        return cls(
            weights=data["weights"], bias=data["bias"], mean=data["mean"], scale=data["scale"]
        )

    @override
    def __repr__(self) -> str:
        return f"Verifier(bias={self.bias:.3f}, weights={[round(w, 3) for w in self.weights]})"
