"""`spa report`: a self-contained HTML page about a model and its pruning.

It draws the layer graph (pan and zoom; each coupling group in its own
colour, blocked and unprunable groups marked with their reasons), a table of
the layers' widths, parameters, MACs and latency before and after pruning,
the totals, and the sensitivity curves when the plan measured them.

- `layer_graph`: the layers and the data flow between them;
- `contents`: what the page shows, as JSON;
- `timing`: onnxruntime latency, whole-model and per layer;
- `page`: the HTML, with the vendored libraries inline (vendor/VERSIONS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spa.html_report.contents import Side, report_contents
from spa.html_report.page import render_page

__all__ = ["build_report", "render_page", "report_data", "write_report"]
from spa.html_report.timing import add_latency


def report_data(original, pruned=None, plan: Mapping[str, Any] | None = None, latency: bool = True,
                input_shapes: Mapping[str, Sequence[int]] | None = None, threads: int = 1) -> dict[str, Any]:
    """What the page comparing `original` with `pruned` shows (spa.model.Model objects; `pruned` None:
    the original alone), as JSON-ready data. `plan` is a plan as spa.groups.plan_to_dict writes it, for
    removed counts, blocked groups and sensitivity curves. `latency` times both models with
    onnxruntime on `threads` threads, on inputs sized by `input_shapes` where dims are dynamic."""
    before = Side.of(original)
    after = Side.of(pruned) if pruned is not None else None
    contents = report_contents(original.label, original.coupling_groups(), before, after, plan)
    if latency:
        add_latency(contents, before, after, input_shapes, threads)
    return contents


def build_report(original, pruned=None, plan: Mapping[str, Any] | None = None, latency: bool = True,
                 input_shapes: Mapping[str, Sequence[int]] | None = None, threads: int = 1) -> str:
    """The HTML page of report_data's contents."""
    return render_page(report_data(original, pruned, plan, latency, input_shapes, threads))


def write_report(path: str | Path, original, pruned=None, plan: Mapping[str, Any] | None = None,
                 latency: bool = True, input_shapes: Mapping[str, Sequence[int]] | None = None) -> None:
    """Write the page of build_report to `path` (whole or not at all)."""
    from spa.exporter import write_text_atomically

    write_text_atomically(str(path), build_report(original, pruned, plan, latency, input_shapes))
