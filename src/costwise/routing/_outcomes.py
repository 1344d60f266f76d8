"""Labelled outcomes: which models answered a prompt well, and what it cost."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError

if TYPE_CHECKING:
    from ..ledger import LedgerEntry

__all__ = ["ModelOutcome", "Outcome", "load_outcomes", "outcomes_from_ledger"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelOutcome:
    """How one model did on one prompt.

    Attributes:
        score: the graded quality in [0, 1] (``1.0``/``0.0`` for correct/incorrect).
        response: the model's answer text, when recorded.
        samples: several sampled answers of the model, when recorded.
        cost_usd: what the call really cost, when recorded.
    """

    score: float
    response: str | None = None
    samples: tuple[str, ...] = ()
    cost_usd: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """One prompt with the outcome of every model tried on it (a training row)."""

    id: str
    prompt: str
    task: str | None = None
    models: Mapping[str, ModelOutcome] = field(default_factory=lambda: MappingProxyType({}))


def _model_outcome(origin: str, raw: Mapping[str, Any]) -> ModelOutcome:
    if "score" in raw and raw["score"] is not None:
        score = float(raw["score"])
    elif "correct" in raw:
        score = 1.0 if raw["correct"] else 0.0
    else:
        msg = f"{origin}: a model outcome needs 'correct' or 'score'"
        raise ConfigurationError(msg)
    if not 0.0 <= score <= 1.0:
        msg = f"{origin}: score must be in [0, 1], got {score!r}"
        raise ConfigurationError(msg)
    cost = raw.get("cost_usd")
    return ModelOutcome(
        score=score,
        response=raw.get("response"),
        samples=tuple(raw.get("samples") or ()),
        cost_usd=None if cost is None else float(cost),
    )


def load_outcomes(path: str | os.PathLike[str]) -> list[Outcome]:
    """Read an outcomes file (JSON Lines, one prompt per line).

    Use it to fit a `LearnedRouter` from recorded results. Each line is
    ``{"id", "prompt", "task"?, "models": {name: {"correct" | "score", "response"?,
    "samples"?, "cost_usd"?}}}``; any number of models.

    Raises:
        ConfigurationError: the file can't be read or a line is malformed (the message
            names the line).
    """
    origin = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return list(_parse(handle, origin))
    except OSError as exc:
        msg = f"{origin}: cannot read outcomes: {exc.strerror or exc}"
        raise ConfigurationError(msg) from exc


def _parse(lines: Any, origin: str) -> Iterator[Outcome]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{origin}:{number}"
        try:
            row = json.loads(line)
            models = {
                str(name): _model_outcome(f"{where}: model {name!r}", raw)
                for name, raw in row["models"].items()
            }
            yield Outcome(
                id=str(row.get("id", number)),
                prompt=str(row["prompt"]),
                task=row.get("task"),
                models=MappingProxyType(models),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            msg = f"{where}: malformed outcome line ({type(exc).__name__}: {exc})"
            raise ConfigurationError(msg) from exc


def outcomes_from_ledger(entries: Iterable[LedgerEntry]) -> list[Outcome]:
    """Training rows from a cascade's own verdicts, read back from the ledger.

    Use it to fit a `LearnedRouter` on your live traffic without grading anything by hand:
    run a `costwise.strategies.Cascade` with ``record_prompt=True`` for a while, then
    ``LearnedRouter().fit(outcomes_from_ledger(ledger.entries()))``. Each cascade attempt
    whose answer a check rejected labels its model 0 for that prompt; the returned answer
    labels its model 1 when it passed a check (an unchecked last tier gives no label).
    Failed requests (rate limits, timeouts) give no label either. Calls recorded without a
    prompt are skipped.

    Args:
        entries: ledger entries, e.g. ``client.ledger.entries()``.

    Returns:
        One `Outcome` per call that has a prompt and at least one label.
    """
    by_call: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        if entry.kind == "upstream" and entry.tier is not None:
            by_call.setdefault(entry.call_id, []).append(entry)
    rows = []
    for call_id, attempts in by_call.items():
        final = next((e for e in attempts if e.final), None)
        prompt = None if final is None else final.detail.get("prompt")
        if final is None or not prompt:
            continue
        labels: dict[str, ModelOutcome] = {}
        for e in attempts:
            if e.status != "ok":
                continue
            if e.reason:  # rejected by a check (possibly kept as a last resort)
                labels[e.model] = ModelOutcome(score=0.0)
            elif e is final and final.detail.get("checked") in (True, "True"):
                labels[e.model] = ModelOutcome(score=1.0)
        if labels:
            rows.append(Outcome(id=call_id, prompt=str(prompt), models=MappingProxyType(labels)))
    return rows
