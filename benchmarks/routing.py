"""Router and cascade on recorded outcomes of real models: accuracy versus cost.

Needs the recorded outcomes in ../shared/data (outcomes_*.jsonl, see its README); exits
non-zero with a message when a file is missing.

    .venv/bin/python benchmarks/routing.py [--data PATH ...] [--prices FILE] [--seed 0]

For each file: a seeded split into a fit part and a report part (``--fit-share``, 50% by
default). Everything learned (the router's per-model success predictors, the cascade's
answer scorer, the knob settings of every curve point) comes from the fit part only; every
number printed is measured on the report part, by replaying each prompt THROUGH THE REAL
CLIENT AND STRATEGIES: a `CostwiseClient` whose transport is a `ReplayProvider` serving each
model's recorded answer (never its grade), with usage from tiktoken counts of the real texts
and costs read back from the ledger (or the row's ``cost_usd`` when it has one). Accuracy is
the recorded grade of the answer the client returned.

Curves sweep one knob: the learned router's willingness to pay, calibrated on out-of-fold
predictions of the fit part to send 0%, 5%, ..., 100% (--points) of calls to the strongest model; the
cascade's check threshold, set at the same quantiles of out-of-fold scores of the cheap
answers on the fit part.
"Cost reduction at 95%" is the cost saved against always calling the strongest model by the
cheapest mix of two operating points of the curve (a random mix of two knob settings) that
keeps 95% of the strongest model's accuracy; null when no point reaches it. APGR is the
area under the upper hull of PGR = (acc - acc_cheapest) / (acc_strongest - acc_cheapest)
over the normalised cost (0 = always cheapest, 1 = always strongest); a fixed random mix
scores 0.5.

The last line is one JSON object; with several files its top-level keys are the first
file's, and "files" holds every file's figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = [
    ROOT / "../shared/data/outcomes_mmlu_dev.jsonl",
    ROOT / "../shared/data/outcomes_gsm8k.jsonl",
]
LEVELS = (0.95, 0.90)


# -- curve arithmetic ---------------------------------------------------------------------


def min_cost_at(points: Sequence[tuple[float, float]], target: float) -> float | None:
    """Cheapest cost of a random mix of at most two (cost, accuracy) points reaching target."""
    best: float | None = None
    for c, a in points:
        if a >= target and (best is None or c < best):
            best = c
    for c1, a1 in points:
        for c2, a2 in points:
            if a1 < target <= a2 and a2 > a1:
                p = (target - a1) / (a2 - a1)
                cost = (1 - p) * c1 + p * c2
                if best is None or cost < best:
                    best = cost
    return best


def apgr(points: Sequence[tuple[float, float]]) -> float:
    """Area under the upper concave hull of (normalised cost, PGR), anchors (0,0) and (1,1)."""
    pts = sorted({(min(max(x, 0.0), 1.0), y) for x, y in points} | {(0.0, 0.0), (1.0, 1.0)})
    hull: list[tuple[float, float]] = []
    for p in pts:  # monotone chain, upper hull
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    # keep the envelope non-decreasing: spending more can always be wasted
    area, best = 0.0, hull[0][1]
    for (x1, y1), (x2, y2) in itertools.pairwise(hull):
        y1, y2 = max(y1, best), max(y2, y1, best)
        best = y2
        area += (x2 - x1) * (y1 + y2) / 2
    return area


# -- replaying through the client -----------------------------------------------------------


class Replayer:
    """Runs prompts through a CostwiseClient over a ReplayProvider and reads the ledger."""

    def __init__(self, rows: list[Any], prices: Any, tokenizer: Any) -> None:
        from costwise.testing._replay import ReplayProvider

        self.rows = rows
        self.prices = prices
        self.provider = ReplayProvider(rows, tokenizer=tokenizer)
        self.tokenizer = tokenizer

    def run(self, strategies: list[Any], baseline_model: str) -> dict[str, Any]:
        """Each row once; returns per-row final model, cost (USD) and attempts."""
        import httpx2

        from costwise.ledger import MemoryStore
        from costwise.testing import fake_client

        store = MemoryStore()
        client = fake_client(
            http_client=httpx2.Client(transport=httpx2.MockTransport(self.provider)),
            ledger=store,
            strategies=strategies,
            prices=self.prices,
            tokenizer=self.tokenizer,
        )
        started = time.perf_counter()
        with client:
            for row in self.rows:
                client.chat.completions.create(
                    model=baseline_model, messages=[{"role": "user", "content": row.prompt}]
                )
        elapsed = time.perf_counter() - started
        by_call: dict[str, list[Any]] = {}
        for entry in store.entries():
            by_call.setdefault(entry.call_id, []).append(entry)
        calls = list(by_call.values())
        assert len(calls) == len(self.rows), "one ledger call per replayed prompt"
        finals, costs, attempts = [], [], []
        for row, entries in zip(self.rows, calls, strict=True):
            final = next(e for e in entries if e.final)
            finals.append(final.model)
            total = 0.0
            for e in entries:
                recorded = row.models[e.model].cost_usd if e.model in row.models else None
                if recorded is not None:
                    total += recorded
                elif e.cost_nanos is None:
                    sys.exit(f"no price for model {e.model!r}: pass --prices")
                else:
                    total += e.cost_nanos / 1e9
            costs.append(total)
            attempts.append(len(entries))
        report = store.aggregate()
        return {
            "models": finals,
            "cost": sum(costs),
            "acc": statistics.fmean(
                row.models[m].score for row, m in zip(self.rows, finals, strict=True)
            ),
            "attempts": statistics.fmean(attempts),
            "escalated": sum(r.escalations for r in report) / max(1, sum(r.calls for r in report)),
            "ms_per_call": elapsed * 1000 / max(1, len(self.rows)),
        }


def quantile(values: list[float], q: float) -> float:
    xs = sorted(values)
    k = min(max(round(q * len(xs)), 0), len(xs))
    if k == 0:
        return xs[0] - 1e-9
    if k == len(xs):
        return xs[-1] + 1e-9
    return (xs[k - 1] + xs[k]) / 2


# -- one file -----------------------------------------------------------------------------------


def evaluate(path: Path, args: argparse.Namespace, prices: Any, tokenizer: Any) -> dict[str, Any]:
    from costwise.routing import AnswerScorer, LearnedRouter, load_outcomes
    from costwise.strategies import ModelOverride
    from costwise.strategies.cascade import Cascade, Tier
    from costwise.strategies.checks import all_of, not_empty, score, self_agreement
    from costwise.strategies.router import Router, detect_task

    rows = load_outcomes(path)
    rng = random.Random(args.seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    cut = round(len(rows) * args.fit_share)
    fit = [rows[i] for i in order[:cut]]
    test = [rows[i] for i in order[cut:]]
    if args.limit:
        test = test[: args.limit]
    models = sorted({m for r in rows for m in r.models})
    for m in models:
        if prices.lookup(m) is None:
            sys.exit(f"{path}: model {m!r} has no price; pass --prices FILE")
    has_text = all(r.models[m].response is not None for r in fit for m in r.models)
    has_samples = any(r.models[m].samples for r in fit for m in r.models)
    fit_acc = {m: statistics.fmean(r.models[m].score for r in fit if m in r.models) for m in models}
    by_price = sorted(models, key=lambda m: prices.lookup(m).input + prices.lookup(m).output)
    cheapest = by_price[0]
    strongest = max(models, key=lambda m: (fit_acc[m], by_price.index(m)))
    print(
        f"\n== {path.name}: {len(rows)} rows, fit {len(fit)} / report {len(test)} "
        f"(seed {args.seed}); models {', '.join(by_price)}; text={'yes' if has_text else 'no'}"
        f"{', samples' if has_samples else ''}"
    )
    replay = Replayer(test, prices, tokenizer)
    baseline = strongest  # the model the caller writes: the ledger's baseline

    # Baselines: every model alone.
    alone = {m: replay.run([ModelOverride(m)], baseline) for m in models}
    c_strong, a_strong = alone[strongest]["cost"], alone[strongest]["acc"]
    c_cheap, a_cheap = alone[cheapest]["cost"], alone[cheapest]["acc"]

    def as_point(res: dict[str, Any]) -> tuple[float, float]:
        return res["cost"], res["acc"]

    def reduction(cost: float | None) -> float | None:
        return None if cost is None else round(1 - cost / c_strong, 4)

    def pgr(acc: float) -> float:
        gap = a_strong - a_cheap
        return (acc - a_cheap) / gap if gap > 0 else 1.0

    def ncost(cost: float) -> float:
        span = c_strong - c_cheap
        return (cost - c_cheap) / span if span > 0 else 0.0

    shares = [i / (args.points - 1) for i in range(args.points)]

    # Router: learned, fit on the fit part; the knob calibrated there.
    t0 = time.perf_counter()
    # Files without answer texts are replayed with the placeholder answer, so that is the
    # typical answer length the router should price (with texts it is measured on the fit part).
    from costwise.testing._replay import PLACEHOLDER

    learned = LearnedRouter().fit(
        fit, prices=prices, output_tokens=None if has_text else tokenizer.count(PLACEHOLDER)
    )
    fit_seconds = time.perf_counter() - t0
    single = [r.prompt for r in test[:200]]
    t0 = time.perf_counter()
    for p in single:
        learned.predict([p])
    learned_us = (time.perf_counter() - t0) / len(single) * 1e6
    learned.warm([r.prompt for r in test])
    router_runs = []
    for share in shares:
        learned.calibrate(target_strong_share=share)
        res = replay.run([Router(learned=learned, detect=False)], baseline)
        res["knob"] = f"strong share {share:.0%} (wtp ${learned.wtp:.2g})"
        router_runs.append(res)

    # Cascade: tiers cheapest first (a model a cheaper one beats on the fit part is skipped).
    # A non-final tier's answer passes when the expected gain of escalating is small: the
    # predicted chance that its answer is right (an AnswerScorer over prompt and answer, fit on
    # the fit part; from the prompt alone when the file has no texts) against the learned
    # router's predicted chance that a pricier tier gets it right (from the prompt). With
    # samples, the cheap model's self-agreement must hold too.
    tiers = [
        m
        for m in by_price
        if not any(fit_acc[o] >= fit_acc[m] for o in by_price[: by_price.index(m)])
    ]
    fit_pred = [pred for pred, _ in learned._calibration]  # out-of-fold, in fit-row order
    fit_costs = [costs for _, costs in learned._calibration]
    answer_scorers: dict[str, Any] = {}
    fit_right: dict[str, list[float]] = {}
    memo: dict[tuple[str, str, str], float] = {}
    check_ms: float | None = None  # the learned answer check, one uncached answer at a time
    test_pred = learned.predict([r.prompt for r in test])
    for m in tiers[:-1]:
        if has_text:
            scorer = AnswerScorer().fit(
                [r.prompt for r in fit],
                [r.models[m].response or "" for r in fit],
                [r.models[m].score for r in fit],
            )
            answer_scorers[m] = scorer
            fit_right[m] = scorer.oof
            if check_ms is None:
                sample = test[:100]
                t0 = time.perf_counter()
                for r in sample:
                    scorer(r.prompt, r.models[m].response or "")
                check_ms = (time.perf_counter() - t0) / max(1, len(sample)) * 1000
            right = scorer.predict(
                [r.prompt for r in test], [r.models[m].response or "" for r in test]
            )
        else:
            fit_right[m] = [p[m] for p in fit_pred]
            right = [p[m] for p in test_pred]
        for r, v in zip(test, right, strict=True):
            memo[(m, r.prompt, r.models[m].response or "" if has_text else "")] = v

    def value(model: str, right: float, pred: dict[str, float], costs: dict[str, float]) -> float:
        """Minus the expected gain per extra dollar of escalating: high means keep the answer."""
        pricier = [o for o in tiers[tiers.index(model) + 1 :] if o in pred]
        return -max((pred[o] - right) / max(costs[o], 1e-12) for o in pricier)

    fit_value = {
        m: [value(m, fit_right[m][i], fit_pred[i], fit_costs[i]) for i in range(len(fit))]
        for m in tiers[:-1]
    }
    test_pred_of = {r.prompt: p for r, p in zip(test, test_pred, strict=True)}

    def answer_check(model: str) -> Callable[[Any, Any], float]:
        def worth_keeping(call: Any, resp: Any) -> float:
            prompt = call.messages[-1]["content"]
            answer = resp.choices[0].message.content or ""
            pred = test_pred_of.get(prompt) or learned.predict([prompt])[0]
            right = memo.get((model, prompt, answer if has_text else ""))
            if right is None:
                right = answer_scorers[model](prompt, answer) if has_text else pred[model]
            return value(model, right, pred, learned.costs_for(prompt))

        return worth_keeping

    cascade_runs = []
    for share in shares:
        tier_objs = []
        for m in tiers[:-1]:
            threshold = quantile(fit_value[m], share)  # escalate about `share` of fit answers
            checks: list[Any] = [not_empty(), score(answer_check(m), threshold=threshold)]
            if has_samples:
                checks.insert(1, self_agreement(5))
            tier_objs.append(Tier(model=m, check=all_of(*checks)))
        tier_objs.append(Tier(model=tiers[-1]))
        res = replay.run([Cascade(tier_objs)], baseline)
        res["knob"] = f"escalate ~{share:.0%} of fit answers"
        cascade_runs.append(res)

    # Rules: task detection speed (no network), over the report prompts.
    msgs = [[{"role": "user", "content": r.prompt}] for r in test[:500]]
    timings = []
    for message in msgs:
        t = time.perf_counter_ns()
        detect_task(message)
        timings.append((time.perf_counter_ns() - t) / 1000)
    rules_us = statistics.median(timings)
    rules_p99 = sorted(timings)[int(0.99 * (len(timings) - 1))]

    # Figures.
    single_points = [as_point(alone[m]) for m in models]
    router_points = [as_point(r) for r in router_runs]
    cascade_points = [as_point(r) for r in cascade_runs]
    figures: dict[str, Any] = {}
    for level in LEVELS:
        target = level * a_strong
        key = f"_at_{round(level * 100)}"
        figures["router_cost_reduction" + key] = reduction(min_cost_at(router_points, target))
        figures["cascade_cost_reduction" + key] = reduction(min_cost_at(cascade_points, target))
        figures["fixed_mix_cost_reduction" + key] = reduction(min_cost_at(single_points, target))
    figures["router_apgr"] = round(apgr([(ncost(c), pgr(a)) for c, a in router_points]), 4)
    figures["cascade_apgr"] = round(apgr([(ncost(c), pgr(a)) for c, a in cascade_points]), 4)
    figures["fixed_mix_apgr"] = 0.5
    figures["router_curve"] = [
        [round(1 - c / c_strong, 4), round(a / a_strong, 4)] for c, a in router_points
    ]
    figures["cascade_curve"] = [
        [round(1 - c / c_strong, 4), round(a / a_strong, 4)] for c, a in cascade_points
    ]
    figures["strongest_accuracy"] = round(a_strong, 4)
    figures["cheapest_accuracy"] = round(a_cheap, 4)
    figures["rules_decision_us_p50"] = round(rules_us, 2)
    figures["learned_decision_us"] = round(learned_us, 1)
    figures["cascade_check_ms"] = None if check_ms is None else round(check_ms, 2)
    figures["report_rows"] = len(test)

    # Table.
    print(f"prices: {args.price_note}; cost per 1k calls of the report part")
    head = ["method", "knob", "acc", "acc/strong", "cost/1k", "reduction", "escal.", "ms/call"]
    lines = []
    for m in models:
        res = alone[m]
        lines.append(
            [
                f"always {m}",
                "-",
                f"{res['acc']:.3f}",
                f"{res['acc'] / a_strong:.3f}",
                f"${res['cost'] / len(test) * 1000:.4f}",
                f"{1 - res['cost'] / c_strong:+.1%}",
                "-",
                f"{res['ms_per_call']:.1f}",
            ]
        )
    for name, runs in (("router", router_runs), ("cascade", cascade_runs)):
        for res in runs:
            lines.append(
                [
                    name,
                    res["knob"],
                    f"{res['acc']:.3f}",
                    f"{res['acc'] / a_strong:.3f}",
                    f"${res['cost'] / len(test) * 1000:.4f}",
                    f"{1 - res['cost'] / c_strong:+.1%}",
                    f"{res['escalated']:.0%}" if name == "cascade" else "-",
                    f"{res['ms_per_call']:.1f}",
                ]
            )
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(head)]
    for cells in [head, ["-" * w for w in widths], *lines]:
        print(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
    print()
    summary = [["", "router", "cascade", "best fixed mix"]]
    for level in LEVELS:
        key = f"_at_{round(level * 100)}"
        summary.append(
            [f"cost reduction at {level:.0%} of {strongest}"]
            + [
                "n/a" if figures[k + key] is None else f"{figures[k + key]:.1%}"
                for k in (
                    "router_cost_reduction",
                    "cascade_cost_reduction",
                    "fixed_mix_cost_reduction",
                )
            ]
        )
    summary.append(
        ["APGR", f"{figures['router_apgr']:.3f}", f"{figures['cascade_apgr']:.3f}", "0.500"]
    )
    w = [max(len(cells[i]) for cells in summary) for i in range(4)]
    for cells in summary:
        print("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(cells)))
    print(
        f"task rules: {rules_us:.1f} µs median, {rules_p99:.1f} µs p99 per decision; learned "
        f"router: {learned_us:.0f} µs per uncached decision, fit in {fit_seconds:.1f} s"
        + ("" if check_ms is None else f"; learned answer check: {check_ms:.1f} ms per answer")
    )
    if args.plots:
        plot(
            path,
            args.plots,
            figures,
            single_points,
            router_points,
            cascade_points,
            c_strong,
            a_strong,
            strongest,
        )
    return figures


def plot(
    path: Path,
    directory: str,
    figures: dict[str, Any],
    single: list[Any],
    router: list[Any],
    cascade: list[Any],
    c_strong: float,
    a_strong: float,
    strongest: str,
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no pictures)")
        return
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.2))

    def rel(pts: list[Any]) -> tuple[list[float], list[float]]:
        return [c / c_strong for c, _ in pts], [a / a_strong for _, a in pts]

    xs, ys = rel(sorted(single))
    ax.plot(xs, ys, "k--", marker="s", label="fixed random mix")
    for name, pts, style in (("router", router, "o-"), ("cascade", cascade, "^-")):
        x, y = rel(sorted(pts))
        ax.plot(x, y, style, label=name)
    for level in LEVELS:
        ax.axhline(level, color="grey", lw=0.6, ls=":")
    ax.set_xlabel(f"cost relative to always {strongest}")
    ax.set_ylabel(f"accuracy relative to {strongest}")
    ax.set_title(f"{path.stem} (report half)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    target = out / f"routing_{path.stem}.png"
    fig.savefig(target, dpi=110)
    print(f"picture: {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        action="append",
        type=Path,
        help="an outcomes file (repeatable; default: MMLU and GSM8K)",
    )
    parser.add_argument("--prices", help="a price file (JSON or CSV) added to the bundled table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit-share", type=float, default=0.5)
    parser.add_argument("--points", type=int, default=21, help="points per curve")
    parser.add_argument("--limit", type=int, default=0, help="report on at most N rows")
    parser.add_argument("--plots", default="", help="write PNG curves to this directory")
    args = parser.parse_args()
    paths = args.data or DEFAULT_DATA
    for p in paths:
        if not p.exists():
            sys.exit(
                f"{p}: not found. This benchmark needs the recorded outcomes in "
                f"../shared/data (see its README.md), or --data PATH."
            )

    from costwise.pricing import PriceTable
    from costwise.tokens import TiktokenTokenizer, offline_tiktoken_cache

    os.environ.setdefault(
        "TIKTOKEN_CACHE_DIR",
        str(offline_tiktoken_cache(Path(tempfile.gettempdir()) / "costwise-tiktoken")),
    )
    tokenizer = TiktokenTokenizer("cl100k_base")
    prices = PriceTable.default(on_unknown="raise")
    args.price_note = "bundled list prices (costwise/data/prices.json)"
    if args.prices:
        prices = PriceTable.from_file(args.prices, base=prices)
        args.price_note = f"bundled table + {args.prices}"
    warnings.simplefilter("ignore", ResourceWarning)
    results = {p.name: evaluate(p.resolve(), args, prices, tokenizer) for p in paths}
    first = next(iter(results.values()))
    print(json.dumps({**first, "files": results}))


if __name__ == "__main__":
    main()
