"""The public surface: names in __all__ exist, nothing private leaks, imports stay light."""

from __future__ import annotations

import subprocess
import sys

import costwise


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted, names exist, and no private name is exported."""
    assert list(costwise.__all__) == sorted(costwise.__all__)
    for name in costwise.__all__:
        assert not name.startswith("_")
        assert hasattr(costwise, name), name


def test_exports_claim_the_costwise_module() -> None:
    """Exported classes show as costwise.X, as httpx and openai do."""
    for name in costwise.__all__:
        obj = getattr(costwise, name)
        if isinstance(obj, type):
            assert obj.__module__ == "costwise", name


def test_import_is_light() -> None:
    """import costwise loads no numpy, redis, tiktoken, diskcache, onnxruntime or sklearn."""
    code = (
        "import sys, costwise, costwise.strategies, costwise.ledger, costwise.pricing;"
        "heavy = {'numpy','redis','tiktoken','diskcache','onnxruntime','sklearn','usearch',"
        "'pandas'};"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
