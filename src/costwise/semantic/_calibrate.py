"""`calibrate`: choose the semantic cache's settings for a target false-hit rate.

The false-hit rate (FHR) is the share of *different* questions that the cache would answer
with another question's answer: false hits / labelled non-duplicate pairs. `calibrate`
fits the verifier on labelled pairs, scores every pair out-of-fold (so the scores it
thresholds are scores of pairs the model did not see), and picks the lowest threshold whose
one-sided 95% upper confidence bound on the FHR is within the target: with a few thousand
negative pairs the bound costs a little recall and buys a target that holds on new data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._verifier import Verifier, pair_features

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ._embedders import Embedder

__all__ = ["SemanticSettings", "calibrate", "default_settings", "upper_bound"]

Method = Literal["verifier", "cosine"]


@dataclass(frozen=True, kw_only=True, slots=True)
class SemanticSettings:
    """When the semantic cache may answer: thresholds, the verifier, and how they were chosen.

    Use `default_settings()` (shipped, calibrated on half of QQP for a 2% FHR with the local
    MiniLM embedder), or `calibrate()` on pairs from your own traffic. Settings only make
    sense for the embedder they were fit with (`embedder`).

    Attributes:
        embedder: name of the embedder the cosines came from.
        min_cosine: neighbours below this cosine are never considered (a cheap pre-filter).
        threshold: the verifier score (or, without a verifier, the cosine) a hit needs.
        verifier: the precision model; ``None`` means a plain cosine threshold.
        target_fhr: the false-hit rate the settings were chosen for.
        fit_fhr: the out-of-fold false-hit rate measured on the fitting pairs.
        margin: the threshold was chosen for ``target_fhr * margin`` on the fitting pairs,
            the largest factor that kept resampled held-out checks within the target.
        fit_recall: the share of duplicate pairs caught, same measurement.
        pairs: how many labelled pairs (positives, negatives) they were fit on.
        source: a human-readable note on the data and split.
    """

    embedder: str
    min_cosine: float
    threshold: float
    verifier: Verifier | None = field(default=None, compare=False)
    target_fhr: float = 0.02
    fit_fhr: float | None = None
    margin: float = 1.0
    fit_recall: float | None = None
    pairs: tuple[int, int] = (0, 0)
    source: str = ""

    def score(self, a: str, b: str, cosine: float) -> float:
        """The score of a candidate pair (verifier score, or the cosine without a verifier)."""
        if self.verifier is None:
            return cosine
        return self.verifier.score(a, b, cosine)

    def accepts(self, a: str, b: str, cosine: float) -> bool:
        """Whether the cache may answer `a` with the cached answer of `b`."""
        return cosine >= self.min_cosine and self.score(a, b, cosine) >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (see :meth:`from_dict`)."""
        return {
            "embedder": self.embedder,
            "min_cosine": self.min_cosine,
            "threshold": self.threshold,
            "verifier": self.verifier.to_dict() if self.verifier is not None else None,
            "target_fhr": self.target_fhr,
            "fit_fhr": self.fit_fhr,
            "fit_recall": self.fit_recall,
            "margin": self.margin,
            "pairs": list(self.pairs),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SemanticSettings:
        """Rebuild settings saved with :meth:`to_dict`."""
        verifier = data.get("verifier")
        return cls(
            embedder=str(data["embedder"]),
            min_cosine=float(data["min_cosine"]),
            threshold=float(data["threshold"]),
            verifier=Verifier.from_dict(verifier) if verifier else None,
            target_fhr=float(data.get("target_fhr", 0.02)),
            fit_fhr=data.get("fit_fhr"),
            fit_recall=data.get("fit_recall"),
            margin=float(data.get("margin", 1.0)),
            pairs=(int(data.get("pairs", (0, 0))[0]), int(data.get("pairs", (0, 0))[1])),
            source=str(data.get("source", "")),
        )

    def save(self, path: str | Path) -> None:
        """Write the settings as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SemanticSettings:
        """Read settings written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


@cache
def default_settings() -> SemanticSettings:
    """The shipped settings: local MiniLM, verifier, calibrated for at most 2% false hits.

    They were produced by ``calibrate(target_fhr=0.02)`` on the *fit* half of
    ``qqp_pairs_dev.jsonl`` (seeded split, see ``benchmarks/semantic_cache.py``); the other
    half is what the benchmark reports.
    """
    text = resources.files("costwise").joinpath("data/semantic_default.json").read_text()
    return SemanticSettings.from_dict(json.loads(text))


def upper_bound(errors: int, total: int, *, z: float = 1.645) -> float:
    """One-sided Wilson upper confidence bound of a rate (z=1.645: 95%)."""
    if total == 0:
        return 1.0
    p = errors / total
    centre = p + z * z / (2 * total)
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return min(1.0, (centre + spread) / (1 + z * z / total))


def _as_pairs(pairs: Iterable[Any]) -> list[tuple[str, str, int]]:
    out = []
    for pair in pairs:
        if isinstance(pair, Mapping):
            if "origin" in pair:
                out.append((str(pair["origin"]), str(pair["similar"]), 1))
            else:
                out.append((str(pair["text_a"]), str(pair["text_b"]), int(pair["label"])))
        else:
            a, b, label = pair
            out.append((str(a), str(b), int(label)))
    return out


def pick_threshold(
    scores: Any, labels: Any, target_fhr: float, *, z: float = 1.645
) -> tuple[float, float, float]:
    """The lowest threshold whose FHR upper bound is within `target_fhr`.

    Returns:
        ``(threshold, fhr, recall)`` measured on (`scores`, `labels`).
    """
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    neg = np.sort(s[y == 0])[::-1]
    pos = s[y == 1]
    n_neg = len(neg)
    # Walk the negatives from the top: allowing j false hits needs a threshold just above
    # the (j+1)-th highest negative score.
    best = float(neg[0]) + 1e-9 if n_neg else float(s.min(initial=0.0))
    for j in range(n_neg):
        if upper_bound(j, n_neg, z=z) > target_fhr:
            break
        best = float(np.nextafter(neg[j], np.inf))
    fhr = float((neg >= best).mean()) if n_neg else 0.0
    recall = float((pos >= best).mean()) if len(pos) else 0.0
    return best, fhr, recall


def calibrate(
    pairs: Iterable[Any],
    target_fhr: float = 0.02,
    *,
    embedder: Embedder | None = None,
    cosines: Sequence[float] | Any = None,
    method: Method = "verifier",
    folds: int = 5,
    confidence_z: float = 1.645,
    seed: int = 0,
    resamples: int = 10,
    source: str = "",
) -> SemanticSettings:
    """Choose semantic-cache settings that keep false hits at or under `target_fhr`.

    Use it once on labelled pairs from your own traffic (a few thousand, with hard
    negatives: different questions that look alike) when the shipped default does not fit
    your domain, or to trade recall for a stricter target. Fit on one part of your data and
    check the result on another part before trusting it.

    Args:
        pairs: ``(text_a, text_b, label)`` tuples or ``{"text_a","text_b","label"}`` dicts
            (label 1: same question); ``{"origin","similar"}`` dicts count as positives.
        target_fhr: the highest acceptable false-hit rate, as a fraction.
        embedder: computes the pairs' cosines (default: `LocalMiniLM`).
        cosines: precomputed cosines, one per pair (skips the embedder).
        method: ``"verifier"`` (cosine plus lexical checks, the default) or ``"cosine"``
            (a plain cosine threshold, for comparison).
        folds: cross-fitting folds used to score pairs out-of-fold.
        confidence_z: the z of the one-sided bound on the FHR (0 uses the point estimate).
        seed: shuffles the folds and the resamples.
        resamples: how many times to split the pairs in two, fit on one half and check the
            false-hit rate on the other, to find the safety margin on the target that keeps
            90% of those checks within it (0: no margin, trust the confidence bound alone).
        source: a note stored with the settings.

    Returns:
        The chosen `SemanticSettings`.

    Raises:
        ValueError: no negative pairs, or the pairs and cosines differ in number.

    Example:
        >>> settings = calibrate(my_labelled_pairs, target_fhr=0.01)
        >>> SemanticCache(settings=settings)
    """
    import numpy as np

    rows = _as_pairs(pairs)
    labels = np.array([r[2] for r in rows], dtype=np.int64)
    if not (labels == 0).any():
        msg = "calibrate needs negative pairs (different questions) to measure false hits"
        raise ValueError(msg)
    if embedder is None and cosines is None:
        from ._embedders import LocalMiniLM

        embedder = LocalMiniLM()
    if cosines is None:
        assert embedder is not None
        va = embedder.embed([r[0] for r in rows])
        vb = embedder.embed([r[1] for r in rows])
        cos = np.einsum("ij,ij->i", va, vb).astype(np.float64)
    else:
        cos = np.asarray(cosines, dtype=np.float64)
    if len(cos) != len(rows):
        msg = "calibrate: one cosine per pair"
        raise ValueError(msg)
    name = embedder.name if embedder is not None else "all-MiniLM-L6-v2-int8"
    counts = (int((labels == 1).sum()), int((labels == 0).sum()))

    if method == "cosine":
        threshold, fhr, recall = pick_threshold(cos, labels, target_fhr, z=confidence_z)
        return SemanticSettings(
            embedder=name,
            min_cosine=threshold,
            threshold=threshold,
            target_fhr=target_fhr,
            fit_fhr=fhr,
            fit_recall=recall,
            pairs=counts,
            source=source,
        )

    feats = np.array(
        [pair_features(a, b, float(c)) for (a, b, _), c in zip(rows, cos, strict=True)]
    )
    margin = _margin(feats, labels, target_fhr, folds, confidence_z, seed, resamples)
    oof = _out_of_fold(feats, labels, folds=folds, seed=seed)
    threshold, fhr, recall = pick_threshold(oof, labels, target_fhr * margin, z=confidence_z)
    verifier = Verifier.fit(feats, labels)
    # The cosine pre-filter: below the lowest cosine of any pair the verifier accepted, a
    # neighbour is never worth scoring (rounded down to leave room for unseen pairs).
    accepted = cos[oof >= threshold]
    floor = float(math.floor((accepted.min() if len(accepted) else 0.9) * 100) / 100 - 0.02)
    return SemanticSettings(
        embedder=name,
        min_cosine=max(floor, 0.0),
        threshold=threshold,
        verifier=verifier,
        target_fhr=target_fhr,
        fit_fhr=fhr,
        margin=margin,
        fit_recall=recall,
        pairs=counts,
        source=source,
    )


def _out_of_fold(
    feats: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], *, folds: int, seed: int
) -> npt.NDArray[np.float64]:
    import numpy as np

    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(labels)) % max(folds, 2)
    oof = np.empty(len(labels), dtype=np.float64)
    for k in range(max(folds, 2)):
        test = fold == k
        model = Verifier.fit(feats[~test], labels[~test])
        oof[test] = model.score_features(feats[test])
    return oof


_MARGINS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)


def _margin(
    feats: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    target: float,
    folds: int,
    z: float,
    seed: int,
    resamples: int,
) -> float:
    """The largest factor on `target` whose thresholds held on unseen halves 90% of the time.

    A threshold picked on one sample of pairs lands a little differently on the next one;
    the confidence bound covers the count of false hits but not that shift. Splitting the
    fitting pairs in two many times (fit and pick on one half, measure on the other) shows
    how far it moves, using nothing but the fitting pairs.
    """
    import numpy as np

    if resamples <= 0:
        return 1.0
    rng = np.random.default_rng(seed + 1)
    observed = np.empty((resamples, len(_MARGINS)))
    for r in range(resamples):
        order = rng.permutation(len(labels))
        a, b = order[: len(order) // 2], order[len(order) // 2 :]
        oof = _out_of_fold(feats[a], labels[a], folds=folds, seed=seed + r)
        scores = Verifier.fit(feats[a], labels[a]).score_features(feats[b])
        negatives = scores[labels[b] == 0]
        for j, factor in enumerate(_MARGINS):
            threshold, _, _ = pick_threshold(oof, labels[a], target * factor, z=z)
            observed[r, j] = (negatives >= threshold).mean() if len(negatives) else 0.0
    for j, factor in enumerate(_MARGINS):
        if float(np.quantile(observed[:, j], 0.9)) <= target:
            return factor
    return _MARGINS[-1]
