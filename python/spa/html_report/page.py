"""The report as one self-contained HTML page: the template, its style and script, the vendored
libraries and the contents' JSON, all inline, so the file opens anywhere with no network."""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from typing import Any

from spa.errors import SPAError

LIBRARIES = ("cytoscape.min.js", "dagre.min.js", "chart.umd.min.js")  # see vendor/VERSIONS
_PLACEHOLDER = re.compile(r"\{\{(KIND|TITLE|STYLE|BODY|DATA|SCRIPTS)\}\}")
_SOURCE_MAP = re.compile(r"^//# sourceMappingURL=.*$", re.MULTILINE)  # no map file ships, and none may be fetched


def _asset(*parts: str) -> str:
    try:
        return resources.files("spa.html_report").joinpath(*parts).read_text(encoding="utf-8")
    except OSError as error:
        raise SPAError(f"spa report: a packaged asset is missing ({'/'.join(parts)}: {error.strerror}); "
                       "reinstall spa") from None


def _inline_script(source: str) -> str:
    if "</script" in source.lower():
        raise SPAError("spa report: a script cannot be inlined (it contains '</script')")
    return f"<script>\n{_SOURCE_MAP.sub('', source)}\n</script>"


def _page(kind: str, body: str, script: str, libraries: tuple[str, ...], contents: dict[str, Any]) -> str:
    # "</" inside the JSON would end its <script> element; "<\/" means the same to JSON.
    data = json.dumps(contents, separators=(",", ":")).replace("</", "<\\/")
    scripts = [_inline_script(_asset("vendor", name)) for name in libraries]
    scripts.append(_inline_script(_asset("assets", script)))
    values = {"KIND": kind, "TITLE": html.escape(str(contents.get("model", ""))),
              "STYLE": _asset("assets", "report.css"), "BODY": _asset("assets", body), "DATA": data,
              "SCRIPTS": "\n".join(scripts)}
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], _asset("assets", "page.html"))


def render_page(contents: dict[str, Any]) -> str:
    """The HTML text of a report of `contents` (see spa.html_report.contents)."""
    return _page("SPA report", "report_body.html", "report.js", LIBRARIES, contents)


def render_sweep_page(summary: dict[str, Any]) -> str:
    """The HTML text of a sweep's results and Pareto front (see spa.sweep)."""
    return _page("SPA sweep", "sweep_body.html", "sweep.js", ("chart.umd.min.js",), summary)
