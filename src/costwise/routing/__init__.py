"""The learned router: predict from the prompt which models will answer well.

Fit a `LearnedRouter` on labelled outcomes (a file in the `load_outcomes` format, or rows
you build) and give it to `costwise.strategies.Router(learned=...)`; it then sends each
request to the cheapest model expected to answer about as well as the best one. numpy and
scikit-learn (the ``learn`` extra) are imported only when you fit or predict.
"""

from __future__ import annotations

from ._answer import AnswerScorer
from ._learned import LearnedRouter, TextScorer
from ._outcomes import ModelOutcome, Outcome, load_outcomes, outcomes_from_ledger

__all__ = [
    "AnswerScorer",
    "LearnedRouter",
    "ModelOutcome",
    "Outcome",
    "TextScorer",
    "load_outcomes",
    "outcomes_from_ledger",
]
