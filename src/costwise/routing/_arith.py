"""Re-checking the arithmetic written out in an answer ("3 * 4 = 12", ``<<3*4=12>>``).

Cheap models solve word problems by writing steps; a step whose arithmetic is wrong is a
strong sign the final answer is wrong too (on GSM8K, 46 of the 51 Mixtral answers with a
wrong step in the fit half were wrong, against 32% of all answers). Only pure arithmetic is
evaluated (numbers, ``+ - * /``, ``x`` and the multiplication and division signs,
parentheses, percentages), through `ast`, never `eval`; anything else (variables, units
inside an expression) is skipped, not flagged.
"""

from __future__ import annotations

import ast
import math
import re

__all__ = ["arithmetic_errors", "numbers_in"]

_ANNOTATION = re.compile(r"<<([^<>]*)>>")
# "3 x 4" and the Unicode multiplication signs (U+00D7, U+2715, U+2217, U+00B7)
_TIMES = re.compile("(?<=[\\d)%])\\s*[x\u00d7\u2715\u2217\u00b7]\\s*(?=[\\d(])")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TERM = r"\(?\s*-?\d+(?:\.\d+)?%?\s*\)?"
_EXPR = rf"{_TERM}(?:\s*[-+*/]\s*{_TERM})*"
_CHAIN = re.compile(rf"(?<![\w.]){_EXPR}(?:\s*=\s*{_EXPR})+")
_OPERATOR_BEFORE = re.compile(r"[-+*/]\s*$")
_COMPUTES = re.compile(r"\d%?\s*\)?\s*[-+*/]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_MAX_CHARS = 200  # one step; longer "expressions" are not steps and not worth the parse


def _normalise(text: str) -> str:
    text = text.replace("\\", "").replace("$", "").replace("÷", "/")
    return _TIMES.sub("*", _THOUSANDS.sub("", text))


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand)
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            return left / right
    msg = "not plain arithmetic"
    raise ValueError(msg)


def _evaluate(expression: str) -> float | None:
    expression = re.sub(r"(\d+(?:\.\d+)?)%", r"(\1/100)", expression.strip())
    if not expression or len(expression) > _MAX_CHARS or "**" in expression:
        return None
    try:
        return _value(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


def _check_chain(parts: list[str]) -> tuple[int, int]:
    checked = wrong = 0
    values = [_evaluate(p) for p in parts]
    for a, b, left, right in zip(values, values[1:], parts, parts[1:], strict=False):
        if a is None or b is None or not _COMPUTES.search(f"{left} {right}"):
            continue  # "12 = 12" computes nothing
        checked += 1
        # Answers round (1/3 = 0.33, 7.5% of 19 = 1.43): 1% or a cent of slack.
        if not math.isclose(a, b, rel_tol=0.01, abs_tol=0.011):
            wrong += 1
    return checked, wrong


def arithmetic_errors(text: str) -> tuple[int, int]:
    """How many arithmetic steps `text` writes out, and how many of them are wrong.

    A step is ``a op b = c`` in the text (chains ``a = b + c = d`` are checked pairwise)
    or a calculator annotation ``<<a op b = c>>`` (the GSM8K style). Returns
    ``(checked, wrong)``; ``(0, 0)`` when there is nothing to check.
    """
    text = _normalise(text)
    checked = wrong = 0
    for inner in _ANNOTATION.findall(text):
        c, w = _check_chain(inner.split("="))
        checked, wrong = checked + c, wrong + w
    plain = _ANNOTATION.sub(" ", text)
    for match in _CHAIN.finditer(plain):
        parts = match.group(0).split("=")
        if _OPERATOR_BEFORE.search(plain[: match.start()]):
            parts = parts[1:]  # "4 dozens + 2 = 50": the left side starts before the match
        c, w = _check_chain(parts)
        checked, wrong = checked + c, wrong + w
    return checked, wrong


def numbers_in(text: str) -> set[str]:
    """The numbers written in `text`, normalised (no thousands commas, no trailing zeros)."""
    found = set()
    for raw in _NUMBER.findall(_THOUSANDS.sub("", text)):
        found.add(raw.rstrip("0").rstrip(".") if "." in raw else raw)
    return found
