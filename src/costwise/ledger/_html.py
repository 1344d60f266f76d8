"""The HTML spend report: one self-contained file with inline SVG charts, no network.

Three charts answer the three questions people ask of an LLM bill: *where is it going over
time* (spend per feature per day, stacked), *what did each strategy save* (a waterfall from
the baseline, what the calls would have cost as written, down to what they actually cost),
and *which features cost most* (top features by spend, with what was saved on each).

Saving attribution (the waterfall): a logical call's saving is its baseline minus the cost of
all its entries (upstream attempts, side calls such as judges, cache hits at $0). Every entry
of a call carries the same ``strategy`` field (the ``+``-joined strategies that acted on it),
so grouping entries by that field and taking ``baseline - cost`` per group sums per-call
savings exactly. A group naming one strategy (``cache``) goes to that strategy; a group naming
several (``compressor+router``) is split equally between them (in integer nano-dollars, the
remainder going to the first named); calls no strategy touched go to "untouched" (their saving
is zero unless a price changed). A strategy whose calls cost more than their baseline (a
cascade that escalated, a judge's overhead) shows as a red step up.
"""

from __future__ import annotations

import datetime as dt
import html
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ._store import LedgerStore, ReportRow

__all__ = ["ReportData", "collect", "render_html", "split_savings"]

_NANO = Decimal("1e-9")
# Display order of the waterfall steps: the pipeline order, then the rest alphabetically.
_STEP_ORDER = (
    "cache",
    "semantic_cache",
    "compressor",
    "router",
    "cascade",
    "batching",
    "budget",
    "override",
)
_ALIASES = {"batch": "batching", "batcher": "batching", "none": "untouched"}
_PALETTE = (
    "#4f46e5",
    "#0ea5e9",
    "#14b8a6",
    "#f59e0b",
    "#ec4899",
    "#8b5cf6",
    "#84cc16",
    "#94a3b8",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportData:
    """Everything the HTML report draws, gathered from a store in a few queries."""

    features: Sequence[ReportRow]
    strategies: Sequence[ReportRow]
    days: Sequence[str]
    feature_days: dict[tuple[str, str], int]
    """(day, feature) -> cost in nano-dollars."""
    since: float | None = None
    until: float | None = None


def _feature_days_sqlite(
    path: Any, since: float | None, until: float | None
) -> dict[tuple[str, str], int]:
    where, params = [], []
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts < ?")
        params.append(until)
    sql = (
        "SELECT date(CAST(ts AS INTEGER), 'unixepoch') AS d, feature, "
        "SUM(COALESCE(cost_nanos, 0)) FROM ledger "
        f"{'WHERE ' + ' AND '.join(where) if where else ''} GROUP BY d, feature"
    )
    aligned = all(t is None or t % 86400 == 0 for t in (since, until))
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        daily = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'ledger_daily'").fetchone()
        if daily and aligned:  # the store's running daily totals: no scan of the entries
            where = []
            days: list[str] = []
            for op, t in ((">=", since), ("<", until)):
                if t is not None:
                    where.append(f"day {op} ?")
                    days.append(time.strftime("%Y-%m-%d", time.gmtime(t)))
            sql = (
                "SELECT day, feature, SUM(cost_nanos) FROM ledger_daily "
                f"{'WHERE ' + ' AND '.join(where) if where else ''} GROUP BY day, feature"
            )
            return {(str(d), str(f)): int(c or 0) for d, f, c in conn.execute(sql, days)}
        return {(str(d), str(f)): int(c or 0) for d, f, c in conn.execute(sql, params)}
    finally:
        conn.close()


def _feature_days(
    store: LedgerStore, since: float | None, until: float | None
) -> dict[tuple[str, str], int]:
    """Cost per (UTC day, feature), from the store's own totals where it has them."""
    native = getattr(store, "feature_day_costs", None)
    if callable(native):
        result: dict[tuple[str, str], int] = native(since=since, until=until)
        return result
    from ._sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return _feature_days_sqlite(store.path, since, until)
    out: dict[tuple[str, str], int] = {}
    for e in store.entries(since=since, until=until):
        key = (time.strftime("%Y-%m-%d", time.gmtime(e.ts)), e.feature)
        out[key] = out.get(key, 0) + (e.cost_nanos or 0)
    return out


def collect(
    store: LedgerStore, *, since: float | None = None, until: float | None = None
) -> ReportData:
    """Read what the HTML report needs from any ledger store.

    Args:
        store: the ledger store.
        since: include entries at or after this unix time.
        until: include entries before this unix time.

    Returns:
        The report's data.
    """
    features = store.aggregate(by="feature", since=since, until=until)
    strategies = store.aggregate(by="strategy", since=since, until=until)
    feature_days = _feature_days(store, since, until)
    days = sorted({d for d, _ in feature_days})
    return ReportData(
        features=features,
        strategies=strategies,
        days=days,
        feature_days=feature_days,
        since=since,
        until=until,
    )


def split_savings(rows: Iterable[ReportRow]) -> dict[str, int]:
    """Saving per strategy in nano-dollars, by the attribution rule in the module docstring.

    Args:
        rows: the ledger grouped by ``strategy``.

    Returns:
        Strategy name -> saved nano-dollars (negative when it cost more than the baseline).
    """
    out: dict[str, int] = {}
    for row in rows:
        names = [_ALIASES.get(n, n) for n in row.key.split("+") if n] or ["untouched"]
        saved = row.baseline_nanos - row.cost_nanos
        share, rest = divmod(abs(saved), len(names))
        sign = 1 if saved >= 0 else -1
        for i, name in enumerate(names):
            out[name] = out.get(name, 0) + sign * (share + (rest if i == 0 else 0))
    return out


def _ordered_steps(savings: dict[str, int]) -> list[tuple[str, int]]:
    def rank(name: str) -> tuple[int, str]:
        if name in _STEP_ORDER:
            return (_STEP_ORDER.index(name), name)
        return (len(_STEP_ORDER) + (name == "untouched"), name)

    return [(n, savings[n]) for n in sorted(savings, key=rank) if savings[n] != 0]


# -- formatting ------------------------------------------------------------------------------


def _usd(nanos: int) -> str:
    value = nanos * _NANO
    mag = abs(value)
    if mag >= 1000:
        return f"${value:,.0f}"
    if mag >= 10:
        return f"${value:,.2f}"
    if mag >= Decimal("0.01") or mag == 0:
        return f"${value:,.2f}" if mag >= 1 or mag == 0 else f"${value:.3f}"
    return f"${value:.5f}"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "\u2013"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5, 5 x 10^n)."""
    if value <= 0:
        return 1.0
    exp = 10 ** int(f"{value:e}".split("e")[1])
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * exp:
            return float(m * exp)
    return float(10 * exp)


def _axis_label(usd: float) -> str:
    if usd >= 1000:
        return f"${usd / 1000:,.1f}k"
    if usd >= 1:
        return f"${usd:,.0f}" if usd == int(usd) else f"${usd:,.2f}"
    return f"${usd:.3g}"


# -- charts ----------------------------------------------------------------------------------


def _stacked_days(data: ReportData, colors: dict[str, str], top: list[str]) -> str:
    width, height = 1120, 320
    left, right, top_pad, bottom = 64, 16, 16, 40
    days = list(data.days)
    if not days:
        return '<p class="empty">No spend in this period.</p>'
    per_day: list[dict[str, int]] = []
    for d in days:
        stack: dict[str, int] = {}
        for (day, feat), cost in data.feature_days.items():
            if day == d:
                key = feat if feat in top else "other"
                stack[key] = stack.get(key, 0) + cost
        per_day.append(stack)
    peak = max(sum(s.values()) for s in per_day) * 1e-9
    ymax = _nice_max(peak)
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    slot = plot_w / len(days)
    bar_w = max(2.0, min(48.0, slot * 0.72))
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Spend per feature per day">'
    ]
    for i in range(5):
        v = ymax * i / 4
        y = top_pad + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
            f"{_axis_label(v)}</text>"
        )
    order = [*top, "other"]
    label_every = max(1, len(days) // 12)
    for i, (d, stack) in enumerate(zip(days, per_day, strict=True)):
        x = left + slot * i + (slot - bar_w) / 2
        y = top_pad + plot_h
        for feat in order:
            cost = stack.get(feat, 0)
            if not cost:
                continue
            h = plot_h * cost * 1e-9 / ymax
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0.5):.1f}" '
                f'fill="{colors[feat]}" rx="2">'
                f"<title>{_esc(d)} · {_esc(feat)}: {_usd(cost)}</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 18}" class="axis" '
                f'text-anchor="middle">{_esc(d[5:])}</text>'
            )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{colors[f]}"></i>{_esc(f)}</span>'
        for f in order
        if any(f in s for s in per_day)
    )
    return f'<div class="legend">{legend}</div>' + "".join(parts)


def _waterfall(baseline: int, actual: int, steps: list[tuple[str, int]]) -> str:
    width, height = 1120, 340
    left, right, top_pad, bottom = 64, 16, 24, 56
    bars = [("baseline", baseline, 0, baseline, "base", baseline)]
    level = baseline
    for name, saved in steps:
        new = level - saved
        kind = "down" if saved > 0 else "up"
        bars.append((name, saved, min(level, new), max(level, new), kind, new))
        level = new
    bars.append(("actual", actual, 0, actual, "actual", actual))
    ymax = _nice_max(max(b[3] for b in bars) * 1e-9)
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    slot = plot_w / len(bars)
    bar_w = min(110.0, slot * 0.62)

    def y_of(nanos: int) -> float:
        return top_pad + plot_h - plot_h * nanos * 1e-9 / ymax

    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Saving by strategy">']
    for i in range(5):
        v = ymax * i / 4
        y = top_pad + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
            f"{_axis_label(v)}</text>"
        )
    fills = {"base": "#64748b", "down": "#10b981", "up": "#ef4444", "actual": "#4f46e5"}
    for i, (name, value, lo, hi, kind, after) in enumerate(bars):
        x = left + slot * i + (slot - bar_w) / 2
        y_top, y_bot = y_of(hi), y_of(lo)
        h = max(y_bot - y_top, 1.0)
        label = (
            _usd(value)
            if kind in ("base", "actual")
            else ("\u2212" if kind == "down" else "+") + _usd(abs(value))
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{y_top:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
            f'fill="{fills[kind]}" rx="3"><title>{_esc(name)}: {label}</title></rect>'
        )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{y_top - 6:.1f}" class="val" '
            f'text-anchor="middle">{_esc(label)}</text>'
        )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 20}" class="cat" '
            'text-anchor="middle">'
            f"{_esc(name.replace('_', ' '))}</text>"
        )
        if i < len(bars) - 1:
            level_y = y_of(after)
            parts.append(
                f'<line x1="{x + bar_w:.1f}" x2="{x + slot:.1f}" y1="{level_y:.1f}" '
                f'y2="{level_y:.1f}" class="step"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _top_features(rows: Sequence[ReportRow], colors: dict[str, str], limit: int = 10) -> str:
    ranked = sorted(rows, key=lambda r: r.cost_nanos, reverse=True)[:limit]
    if not ranked:
        return '<p class="empty">No features in this period.</p>'
    peak = max(max(r.cost_nanos, r.baseline_nanos) for r in ranked) or 1
    out = ['<div class="bars">']
    for r in ranked:
        spend_w = 100 * r.cost_nanos / peak
        base_w = 100 * max(r.baseline_nanos, r.cost_nanos) / peak
        color = colors.get(r.key, _PALETTE[-1])
        saved = "?" if r.unknown_cost else _pct(r.baseline_nanos - r.cost_nanos, r.baseline_nanos)
        out.append(
            f'<div class="barrow"><div class="name" title="{_esc(r.key)}">{_esc(r.key)}</div>'
            f'<div class="track"><div class="ghost" style="width:{base_w:.2f}%"></div>'
            f'<div class="fill" style="width:{spend_w:.2f}%;background:{color}"></div></div>'
            f'<div class="num">{_usd(r.cost_nanos)}{"*" if r.unknown_cost else ""}'
            f"<small> of {_usd(r.baseline_nanos)} · saved {saved}</small></div></div>"
        )
    out.append("</div>")
    return "".join(out)


def _table(rows: Sequence[ReportRow]) -> str:
    head = (
        "feature",
        "calls",
        "tokens in",
        "cached",
        "tokens out",
        "spend",
        "baseline",
        "saved",
        "saved %",
        "hit rate",
        "escalated",
    )
    body = []
    for r in sorted(rows, key=lambda r: r.cost_nanos, reverse=True):
        cells = (
            r.key,
            f"{r.calls:,}",
            f"{r.prompt_tokens:,}",
            f"{r.cached_tokens:,}",
            f"{r.completion_tokens:,}",
            _usd(r.cost_nanos) + ("*" if r.unknown_cost else ""),
            _usd(r.baseline_nanos),
            "?" if r.unknown_cost else _usd(r.baseline_nanos - r.cost_nanos),
            "?" if r.unknown_cost else _pct(r.baseline_nanos - r.cost_nanos, r.baseline_nanos),
            _pct(r.hits, r.calls),
            _pct(r.escalations, r.calls),
        )
        body.append("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in cells) + "</tr>")
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


_CSS = """
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",sans-serif;background:#f1f5f9;color:#0f172a}main{max-width:1200px;margin:0 auto;
padding:32px 32px 48px}header{display:flex;justify-content:space-between;align-items:flex-end;
margin-bottom:20px}h1{font-size:26px;margin:0;letter-spacing:-.02em}h1 b{color:#4f46e5}
.sub{color:#64748b;font-size:13px}h2{font-size:16px;margin:0 0 4px}.hint{color:#64748b;
font-size:12.5px;margin:0 0 12px}.kpis{display:grid;grid-template-columns:repeat(7,1fr);gap:12px;
margin-bottom:18px}.kpi{background:#fff;border-radius:12px;padding:14px 16px;
box-shadow:0 1px 2px rgba(15,23,42,.06),0 1px 8px rgba(15,23,42,.04)}.kpi .l{color:#64748b;
font-size:12px;text-transform:uppercase;letter-spacing:.06em}.kpi .v{font-size:21px;
font-weight:650;white-space:nowrap;margin-top:2px}.kpi.good .v{color:#059669}
.card{background:#fff;border-radius:14px;
padding:18px 20px;margin-bottom:18px;box-shadow:0 1px 2px rgba(15,23,42,.06),
0 1px 8px rgba(15,23,42,.04)}svg{width:100%;height:auto;display:block}.grid{stroke:#e2e8f0}
.axis{fill:#94a3b8;font-size:11px}.val{fill:#0f172a;font-size:12px;font-weight:600}
.cat{fill:#334155;font-size:12.5px}.step{stroke:#94a3b8;stroke-dasharray:3 3}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin:4px 0 8px;font-size:12.5px;color:#334155}
.key i{display:inline-block;width:10px;height:10px;border-radius:3px;margin-right:6px}
.bars{display:flex;flex-direction:column;gap:9px}.barrow{display:grid;
grid-template-columns:180px 1fr 250px;align-items:center;gap:12px}.name{font-weight:550;
overflow:hidden;text-overflow:ellipsis;white-space:nowrap}.track{position:relative;height:18px;
background:#f8fafc;border-radius:6px}.ghost{position:absolute;inset:0 auto 0 0;
background:#e2e8f0;border-radius:6px}.fill{position:absolute;inset:0 auto 0 0;border-radius:6px}
.num{font-variant-numeric:tabular-nums;font-weight:600}.num small{font-weight:400;color:#64748b}
table{width:100%;border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th{text-align:right;color:#64748b;font-weight:550;border-bottom:1px solid #e2e8f0;padding:6px 8px}
td{text-align:right;padding:6px 8px;border-bottom:1px solid #f1f5f9}th:first-child,
td:first-child{text-align:left}.empty{color:#94a3b8}footer{color:#94a3b8;font-size:12px}
"""


def render_html(
    data: ReportData | LedgerStore,
    *,
    title: str = "Where the LLM money went",
    generated: dt.datetime | None = None,
) -> str:
    """Render the spend report as one self-contained HTML page (inline CSS and SVG).

    Use it to share spend with people who will not read a table: the file opens offline in
    any browser. ``costwise report --format html --out report.html`` calls it.

    Args:
        data: a store (read with `collect` over all time) or data from `collect`.
        title: the page heading.
        generated: the time printed in the header (default: now, UTC).

    Returns:
        The HTML document.
    """
    if not isinstance(data, ReportData):
        data = collect(data)
    total = ReportRow(
        key="total",
        **{
            f: sum(getattr(r, f) for r in data.features)
            for f in ReportRow.__dataclass_fields__
            if f != "key"
        },
    )
    ranked = [r.key for r in sorted(data.features, key=lambda r: r.cost_nanos, reverse=True)]
    top = ranked[:7] if len(ranked) <= 7 else ranked[:6]
    colors = {f: _PALETTE[i % (len(_PALETTE) - 1)] for i, f in enumerate(top)}
    colors["other"] = _PALETTE[-1]
    saved = total.baseline_nanos - total.cost_nanos
    steps = _ordered_steps(split_savings(data.strategies))
    when = (generated or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    if data.days:
        period = f"{data.days[0]} → {data.days[-1]}" if len(data.days) > 1 else data.days[0]
    else:
        period = "no entries"
    good = "good" if saved > 0 and not total.unknown_cost else ""
    kpis = [
        ("Spend", _usd(total.cost_nanos) + ("*" if total.unknown_cost else ""), ""),
        ("Baseline", _usd(total.baseline_nanos), ""),
        # with a cost unknown, what was saved is unknown too
        ("Saved", "?" if total.unknown_cost else _usd(saved), good),
        ("Saved %", "?" if total.unknown_cost else _pct(saved, total.baseline_nanos), good),
        ("Calls", f"{total.calls:,}", ""),
        ("Cache hit rate", _pct(total.hits, total.calls), ""),
        ("Escalated", _pct(total.escalations, total.calls), ""),
    ]
    unknown_note = (
        "* includes calls to models with no known price: not counted in spend, and what "
        "they saved is unknown (?). "
        if total.unknown_cost
        else ""
    )
    kpi_html = "".join(
        f'<div class="kpi {cls}"><div class="l">{_esc(label)}</div>'
        f'<div class="v">{_esc(v)}</div></div>'
        for label, v, cls in kpis
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_esc(title)}</title><style>{_CSS}</style></head>
<body><main>
<header><div><h1><b>costwise</b> · {_esc(title)}</h1>
<div class="sub">{_esc(period)} · generated {_esc(when)}</div></div></header>
<section class="kpis">{kpi_html}</section>
<section class="card"><h2>Spend per feature per day</h2>
<p class="hint">UTC days; the top features by spend, the rest grouped as “other”.</p>
{_stacked_days(data, colors, top)}</section>
<section class="card"><h2>Saving by strategy: from baseline to actual</h2>
<p class="hint">Baseline = every call priced at the model its caller wrote. Each step is what
calls handled by that strategy saved (green) or added (red); calls handled by several strategies
split their saving equally.</p>
{_waterfall(total.baseline_nanos, total.cost_nanos, steps)}</section>
<section class="card"><h2>Top features by spend</h2>
<p class="hint">Coloured: actual spend. Grey: what the feature would have cost as written.</p>
{_top_features(data.features, colors)}</section>
<section class="card"><h2>All features</h2>{_table(data.features)}</section>
<footer>{unknown_note}Money is exact (integer nano-dollars summed, shown rounded). Made by
costwise; this file needs no network.</footer>
</main></body></html>
"""
