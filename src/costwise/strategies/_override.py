"""`ModelOverride`: send every call (or every call of some features) to one fixed model."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .._call import Call
from ..typing import Flow

__all__ = ["ModelOverride"]

logger = logging.getLogger("costwise")


class ModelOverride:
    """Replace the requested model with a fixed one.

    Use it to move a whole feature to a cheaper model without touching its code, or to pin
    every call in a test run to one model. The ledger still compares each call against the
    model the caller wrote, so the saving shows up in ``report()``. It only rewrites the
    request, so it runs for streams and raw responses too.

    Args:
        model: the model to use for every call not covered by `features`.
        features: per-feature models, e.g. ``{"tagging": "gpt-4o-mini"}``; features not
            listed use `model`, or keep their own model when `model` is ``None``.

    Example:
        >>> CostwiseClient(strategies=[ModelOverride(features={"tagging": "gpt-4o-mini"})])
    """

    name = "override"
    request_only = True

    def __init__(
        self, model: str | None = None, *, features: Mapping[str, str] | None = None
    ) -> None:
        if model is None and not features:
            msg = "ModelOverride needs a model, or a features mapping"
            raise ValueError(msg)
        for value in [model, *(features or {}).values()]:
            if value is not None and (not isinstance(value, str) or not value):
                msg = f"ModelOverride: models must be non-empty strings, got {value!r}"
                raise ValueError(msg)
        self.model = model
        self.features = dict(features or {})

    def flow(self, call: Call) -> Flow:
        target = self.features.get(call.feature, self.model)
        if target is None or target == call.model:
            return (yield call)
        logger.debug("override: %s -> %s for %s", call.model, target, call.feature)
        call.trace.act(self.name, override_from=call.model)
        return (yield call.replace(model=target))
