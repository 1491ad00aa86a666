"""The Pareto front of a sweep (output agreement against latency) and the files a sweep writes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spa.exporter import write_bytes_atomically, write_text_atomically

COLUMNS = ("criterion", "target", "measure", "round_to", "params", "params_removed", "macs", "macs_removed", "latency_ms",
           "top1_agreement", "output_error", "blocked_groups", "seconds", "file", "error")


def quality(row: dict[str, Any]) -> float:
    """How closely a pruned model follows the dense one: top-1 agreement, else 1 - output error."""
    if row.get("top1_agreement") is not None:
        return float(row["top1_agreement"])
    return 1.0 - min(float(row.get("output_error", 1.0)), 1.0)


def pareto_front(rows: Sequence[dict[str, Any]]) -> list[int]:
    """Indices of the rows no other row beats on both quality (higher) and latency (lower), by latency."""
    measured = [i for i, row in enumerate(rows) if "latency_ms" in row]
    front = []
    for i in measured:
        beaten = any(quality(rows[j]) >= quality(rows[i]) and rows[j]["latency_ms"] <= rows[i]["latency_ms"]
                     and (quality(rows[j]) > quality(rows[i]) or rows[j]["latency_ms"] < rows[i]["latency_ms"])
                     for j in measured)
        if not beaten:
            front.append(i)
    return sorted(front, key=lambda i: rows[i]["latency_ms"])


def _table(rows: Sequence[dict[str, Any]]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def write_results(folder: str | Path, label: str, dense: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Write the pruned models, results.csv, results.json and pareto.html into `folder`; their names."""
    from spa.html_report.page import render_sweep_page

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        blob = row.pop("model", None)
        if blob is not None:
            row["file"] = f"{row['criterion']}-{row['target']:g}.onnx"
            write_bytes_atomically(folder / row["file"], blob)
    front = pareto_front([dense, *rows])
    summary = {"model": label, "dense": dense, "rows": rows, "pareto": [i - 1 for i in front if i > 0]}
    write_text_atomically(folder / "results.csv", _table([dense, *rows]))
    write_text_atomically(folder / "results.json", json.dumps(summary, indent=1))
    write_text_atomically(folder / "pareto.html", render_sweep_page(summary))
    return ["results.csv", "results.json", "pareto.html", *[row["file"] for row in rows if "file" in row]]
