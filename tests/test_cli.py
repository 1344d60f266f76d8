"""The costwise command: report/export/prices output, and distinct exit codes for each fault."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from costwise.cli import (
    EXIT_BAD_DATE,
    EXIT_BAD_PRICES,
    EXIT_LEDGER_CORRUPT,
    EXIT_LEDGER_MISSING,
    EXIT_OK,
    EXIT_UNKNOWN_FIELD,
    EXIT_UNKNOWN_MODEL,
    EXIT_USAGE,
    main,
)
from costwise.cli._common import parse_when
from costwise.ledger import LedgerEntry, SQLiteStore, to_timestamp

TS = to_timestamp("2026-11-20T12:00:00") or 0.0


def entry(i: int, feature: str, cost: int, baseline: int, **kw: object) -> LedgerEntry:
    fields: dict[str, object] = {
        "id": f"{i:032x}",
        "call_id": f"c{i}",
        "ts": TS + i * 3600,
        "feature": feature,
        "requested_model": "gpt-4o",
        "model": "gpt-4o-mini",
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "cached_tokens": 5,
        "cost_nanos": cost,
        "baseline_nanos": baseline,
        "final": True,
        **kw,
    }
    return LedgerEntry(**fields)  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite"
    store = SQLiteStore(path)
    store.write(
        [
            entry(0, "chat", 1_000_000, 4_000_000, strategy="router"),
            entry(1, "chat", 0, 4_000_000, kind="hit", strategy="cache"),
            entry(2, "search", 2_000_000, 2_000_000),
            entry(30, "search", 3_000_000, 2_000_000, strategy="cascade", tier=1),
        ]
    )
    store.close()
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_report_table(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default table shows spend, baseline, saved, rates and a total row."""
    code, out, _ = run(["report", "--ledger", str(ledger)], capsys)
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["feature", "calls", "tokens"]
    chat = next(line for line in lines if line.startswith("chat"))
    assert "$0.0010" in chat
    assert "$0.0080" in chat
    assert "87.5%" in chat  # saved %
    assert "50.0%" in chat  # hit rate
    assert lines[-1].startswith("total")


def test_report_json_is_exact(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """JSON money values are exact decimal strings; rates are fractions."""
    code, out, _ = run(["report", "--ledger", str(ledger), "--format", "json"], capsys)
    assert code == EXIT_OK
    doc = json.loads(out)
    rows = {r["feature"]: r for r in doc["rows"]}
    assert Decimal(rows["chat"]["saved_usd"]) == Decimal("0.007")
    assert rows["search"]["escalation_rate"] == 0.5
    assert doc["total"]["calls"] == 4


def test_report_csv_by_strategy_with_fields(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--by and --fields choose rows and columns of the CSV."""
    code, out, _ = run(
        [
            "report",
            "--ledger",
            str(ledger),
            "--by",
            "strategy",
            "--format",
            "csv",
            "--fields",
            "calls,cost_usd",
        ],
        capsys,
    )
    assert code == EXIT_OK
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["strategy", "calls", "cost_usd"]
    assert ["cache", "1", "0"] in rows
    assert rows[-1][0] == "total"


def test_report_time_range(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--since/--until select entries by time; an empty range says so."""
    code, out, _ = run(
        ["report", "--ledger", str(ledger), "--since", "2026-11-21", "--format", "json"], capsys
    )
    assert code == EXIT_OK
    assert [r["feature"] for r in json.loads(out)["rows"]] == ["search"]
    code, out, _ = run(["report", "--ledger", str(ledger), "--until", "2026-11-01"], capsys)
    assert code == EXIT_OK
    assert "no ledger entries" in out


def test_report_html_to_file(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--format html --out writes a self-contained page."""
    out_file = tmp_path / "r.html"
    code, _, err = run(
        ["report", "--ledger", str(ledger), "--format", "html", "--out", str(out_file)], capsys
    )
    assert code == EXIT_OK
    assert "wrote" in err
    page = out_file.read_text()
    assert page.startswith("<!doctype html>")
    assert "<svg" in page
    assert "http://" not in page and "https://" not in page


def test_export_jsonl(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`costwise export` writes one JSON line per entry."""
    code, out, err = run(["export", "--ledger", str(ledger), "--format", "jsonl"], capsys)
    assert code == EXIT_OK
    assert len(out.splitlines()) == 4
    assert "exported 4 entries" in err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["report", "--ledger", "{tmp}/missing.sqlite"], EXIT_LEDGER_MISSING, "no ledger at"),
        (["report", "--ledger", "{tmp}/garbage.sqlite"], EXIT_LEDGER_CORRUPT, "corrupt"),
        (["report", "--ledger", "{tmp}/other.sqlite"], EXIT_LEDGER_CORRUPT, "not a costwise"),
        (["report", "--ledger", "{tmp}/empty.sqlite"], EXIT_LEDGER_CORRUPT, "empty"),
        (
            ["report", "--ledger", "{ledger}", "--since", "last tuesday"],
            EXIT_BAD_DATE,
            "not a date",
        ),
        (
            ["report", "--ledger", "{ledger}", "--since", "2026-11-02", "--until", "2026-11-01"],
            EXIT_BAD_DATE,
            "is not before",
        ),
        (
            ["report", "--ledger", "{ledger}", "--fields", "calls,spend"],
            EXIT_UNKNOWN_FIELD,
            "unknown field 'spend'",
        ),
        (["report", "--ledger", "{ledger}", "--by", "colour"], EXIT_USAGE, "invalid choice"),
        (["prices", "no-such-model"], EXIT_UNKNOWN_MODEL, "no price for 'no-such-model'"),
        (["prices", "--file", "{tmp}/bad-prices.json"], EXIT_BAD_PRICES, "invalid price sheet"),
    ],
)
def test_errors_have_distinct_codes_and_clear_messages(
    argv: list[str],
    code: int,
    message: str,
    ledger: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each fixable fault exits with its own code and a one-line message on stderr."""
    import sqlite3

    (tmp_path / "garbage.sqlite").write_bytes(b"this is not sqlite" * 100)
    (tmp_path / "empty.sqlite").write_bytes(b"")
    other = sqlite3.connect(tmp_path / "other.sqlite")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    other.close()
    (tmp_path / "bad-prices.json").write_text('{"my-model": {"input": "-1", "output": "2"}}')
    args = [a.format(tmp=tmp_path, ledger=ledger) for a in argv]
    got, _, err = run(args, capsys)
    assert got == code
    assert message in err


def test_prices_table_and_age(capsys: pytest.CaptureFixture[str]) -> None:
    """`costwise prices MODEL` shows the price and how old the bundled prices are."""
    code, out, _ = run(["prices", "gpt-4o-mini"], capsys)
    assert code == EXIT_OK
    assert "gpt-4o-mini" in out
    assert "0.15" in out
    assert "days old" in out


def test_prices_show_long_prompt_tiers(capsys: pytest.CaptureFixture[str]) -> None:
    """A model with a long-prompt tier shows it, in the table and in JSON."""
    code, out, _ = run(["prices", "gemini-2.5-pro", "gpt-4o-mini"], capsys)
    assert code == EXIT_OK
    assert "gemini-2.5-pro: prompts over 200,000 tokens" in out and "15 out" in out
    assert "gpt-4o-mini: prompts over" not in out
    code, out, _ = run(["prices", "gemini-2.5-pro", "--format", "json"], capsys)
    tier = json.loads(out)["models"]["gemini-2.5-pro"]["long_context"]
    assert tier == {
        "above": 200000,
        "input": "2.50",
        "cached_input": "0.25",
        "cache_write": None,
        "output": "15.00",
    }


def test_prices_validates_a_sheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid sheet is reported valid and its models are priced from it."""
    sheet = tmp_path / "prices.csv"
    sheet.write_text("model,input,output\nmy-ft-model,0.30,1.20\n")
    code, out, err = run(
        ["prices", "my-ft-model", "--file", str(sheet), "--format", "json"], capsys
    )
    assert code == EXIT_OK
    assert "valid, 1 models" in err
    assert json.loads(out)["models"]["my-ft-model"]["input"] == "0.30"


def test_relative_times() -> None:
    """--since accepts ages and named days as well as ISO dates."""
    now = to_timestamp("2026-11-20T12:00:00") or 0.0
    assert parse_when("7d", now=now) == now - 7 * 86400
    assert parse_when("today", now=now) == to_timestamp("2026-11-20")
    assert parse_when("month", now=now) == to_timestamp("2026-11-01")
    assert parse_when("1767225600") == 1767225600.0  # Unix seconds, as the API takes


def test_installed_entry_point_runs(ledger: Path) -> None:
    """`python -m costwise` runs as a process and exits with the documented code."""
    proc = subprocess.run(
        [sys.executable, "-m", "costwise", "report", "--ledger", str(ledger) + ".nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == EXIT_LEDGER_MISSING
    assert "costwise report: no ledger" in proc.stderr


def test_prune_shows_then_deletes_whole_days(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --yes nothing goes; with it, the days before --before go with their totals."""
    before = ["prune", "--ledger", str(ledger), "--before", "2026-11-21"]
    code, out, _ = run(before, capsys)
    assert code == 0 and "would delete 3 entries (3 calls, $0.0030 spent" in out
    assert "2026-11-20 to 2026-11-20" in out and "nothing deleted" in out
    assert len(list(SQLiteStore(ledger).entries())) == 4
    code, _, err = run([*before, "--yes"], capsys)
    assert code == 0 and "deleted 3 entries before 2026-11-21" in err
    left = list(SQLiteStore(ledger).entries())
    assert [e.id for e in left] == [entry(30, "search", 0, 0).id]
    code, out, _ = run(["report", "--ledger", str(ledger), "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["total"]["calls"] == 1


def test_prune_refuses_the_future_and_needs_a_ledger(
    tmp_path: Path, ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["prune", "--ledger", str(ledger), "--before", "2999-01-01"], capsys)
    assert code == EXIT_BAD_DATE and "in the future" in err
    code, _, err = run(["prune", "--ledger", str(ledger), "--before", "someday"], capsys)
    assert code == EXIT_BAD_DATE and "not a date" in err
    code, _, err = run(
        ["prune", "--ledger", str(tmp_path / "none.sqlite"), "--before", "90d"], capsys
    )
    assert code == EXIT_LEDGER_MISSING and "no ledger" in err
    code, _, _ = run(["prune", "--ledger", str(ledger)], capsys)
    assert code == 2  # --before is required
