"""Labelled outcomes: which models answered a prompt well, and what it cost."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .._exceptions import ConfigurationError

__all__ = ["ModelOutcome", "Outcome", "load_outcomes"]


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
