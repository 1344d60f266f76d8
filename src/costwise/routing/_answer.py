"""`AnswerScorer`: how likely is this answer to be right? (a learned cascade check)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from typing_extensions import Self

from .._exceptions import ConfigurationError
from ._arith import arithmetic_errors, numbers_in
from ._learned import TextScorer
from ._single import logistic_one

__all__ = ["AnswerScorer"]

_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")
_FINAL = re.compile(
    r"(?:####|answer is|answer:|=)\s*\**\s*\$?\s*(-?[\d,]*\.?\d+)\s*\**\.?\s*$", re.IGNORECASE
)
_HEDGE = re.compile(
    r"\b(?:however|assum\w*|approximately|roughly|not sure|unclear|cannot|"
    r"can't|impossible|round(?:ed|ing)?)\b",
    re.IGNORECASE,
)


def _form(prompt: str, answer: str) -> list[float]:
    """Task-independent features of an answer's form (no model, well under a millisecond)."""
    stripped = answer.strip()
    tail = stripped[-200:]
    final = _FINAL.search(tail)
    value: float | None = None
    if final is not None:
        try:
            value = float(final.group(1).replace(",", ""))
        except ValueError:
            value = None
    numbers = _NUMBER.findall(answer)
    checked, wrong = arithmetic_errors(answer)
    given = numbers_in(prompt)
    # An answer that never uses some of the prompt's numbers often missed a condition.
    used = len(given & numbers_in(answer)) / len(given) if given else 1.0
    # A final answer that is none of the last results worked out was not derived.
    unsupported = 0.0
    if final is not None:
        before = numbers_in(
            " ".join(_NUMBER.findall(stripped[: len(stripped) - len(tail) + final.start()])[-3:])
        )
        unsupported = 0.0 if numbers_in(final.group(1)) <= before else 1.0
    return [
        1.0 if final is not None else 0.0,
        1.0 if value is not None and value.is_integer() else 0.0,
        1.0 if _HEDGE.search(answer) else 0.0,
        math.log1p(len(answer)) / 8,
        math.log1p(len(prompt)) / 8,
        math.log1p(answer.count("\n")) / 4,
        math.log1p(len(numbers)) / 4,
        math.log1p(checked) / 2,
        min(wrong, 3) / 3,
        1.0 if wrong else 0.0,
        used,
        unsupported,
    ]


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


class AnswerScorer:
    """Predicts whether a model's answer to a prompt is right, from the prompt and the answer.

    Use it as a cascade check (``score(lambda call, resp: scorer(prompt, answer))``) when
    you have graded answers of the cheap model on your own traffic: it learns what wrong
    answers look like (hedging, no clear final answer, topics the model fails on). It stacks
    two `TextScorer`s (prompt with answer, answer alone; their out-of-fold predictions) with
    a few task-independent features of the answer's form in a small logistic regression.

    Args:
        folds: cross-fitting folds for the stacked predictions.
    """

    def __init__(self, *, folds: int = 3) -> None:
        if folds < 2:
            msg = f"AnswerScorer: folds must be at least 2, got {folds!r}"
            raise ConfigurationError(msg)
        self.folds = folds
        self._text: list[TextScorer] = []
        self._stack: Any = None
        self.oof: list[float] = []
        """Out-of-fold predictions on the fit rows (for choosing a threshold)."""

    @staticmethod
    def _views(prompts: Sequence[str], answers: Sequence[str]) -> list[list[str]]:
        return [
            [p + "\n[ANSWER]\n" + a for p, a in zip(prompts, answers, strict=True)],
            list(answers),
        ]

    def _stacked(
        self, text_probs: list[Any], prompts: Sequence[str], answers: Sequence[str]
    ) -> list[list[float]]:
        return [
            [_logit(float(col[i])) for col in text_probs] + _form(prompts[i], answers[i])
            for i in range(len(prompts))
        ]

    def fit(self, prompts: Sequence[str], answers: Sequence[str], scores: Sequence[float]) -> Self:
        """Fit on graded answers (`scores` in [0, 1]); returns self.

        Raises:
            ConfigurationError: lengths differ or too few rows for the folds.
        """
        n = len(prompts)
        if n != len(answers) or n != len(scores) or n < 2 * self.folds:
            msg = "AnswerScorer.fit needs prompts, answers and scores of one length (>= 2*folds)"
            raise ConfigurationError(msg)
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        views = self._views(prompts, answers)
        oof_cols = []
        for view in views:
            col = np.zeros(n)
            for k in range(self.folds):
                train = [i for i in range(n) if i % self.folds != k]
                held = [i for i in range(n) if i % self.folds == k]
                scorer = TextScorer().fit([view[i] for i in train], [scores[i] for i in train])
                col[held] = scorer.predict([view[i] for i in held])
            oof_cols.append(col)
        self._text = [TextScorer().fit(view, list(scores)) for view in views]
        x = np.asarray(self._stacked(oof_cols, prompts, answers))
        y = (np.asarray(scores, dtype=float) >= 0.5).astype(int)
        if y.min() == y.max():
            msg = "AnswerScorer.fit needs both good and bad answers"
            raise ConfigurationError(msg)
        oof = np.zeros(n)
        for k in range(self.folds):
            mask = np.array([i % self.folds != k for i in range(n)])
            if y[mask].min() == y[mask].max():  # one class in this fold's training part
                oof[~mask] = float(y[mask][0])
                continue
            part = LogisticRegression(max_iter=1000).fit(x[mask], y[mask])
            oof[~mask] = part.predict_proba(x[~mask])[:, 1]
        self.oof = [float(v) for v in oof]
        self._stack = LogisticRegression(max_iter=1000).fit(x, y)
        return self

    def predict(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        """The probability that each answer is right."""
        if self._stack is None:
            msg = "AnswerScorer: call fit() first"
            raise ConfigurationError(msg)
        views = self._views(prompts, answers)
        cols = [scorer.predict(view) for scorer, view in zip(self._text, views, strict=True)]
        x = self._stacked(cols, prompts, answers)
        if len(x) == 1:  # one answer (a cascade's check): without sklearn's input validation
            import numpy as np

            return [logistic_one(self._stack, np.asarray(x[0], dtype=np.float64))]
        return [float(v) for v in self._stack.predict_proba(x)[:, 1]]

    def __call__(self, prompt: str, answer: str) -> float:
        """The probability that `answer` to `prompt` is right."""
        return self.predict([prompt], [answer])[0]
