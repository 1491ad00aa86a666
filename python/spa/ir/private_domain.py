"""Keeping nodes out of an onnx tool's way: move them to a private domain, and back.

onnx's version converter and onnxscript's constant folder leave nodes of
domains they do not know alone; SPA uses that to protect nodes those tools
would otherwise rewrite (see exporter/opset.py and importer/shape_folding.py).
"""

from __future__ import annotations

from collections.abc import Callable

import onnx


def hide(model: onnx.ModelProto, domain: str, should_hide: Callable[[onnx.NodeProto], bool]) -> bool:
    """Move the main graph's default-domain nodes for which `should_hide` holds into `domain`;
    True if any were moved (the domain is then imported)."""
    hidden = False
    for node in model.graph.node:
        if node.domain in ("", "ai.onnx") and should_hide(node):
            node.domain = domain
            hidden = True
    if hidden and all(o.domain != domain for o in model.opset_import):
        model.opset_import.add(domain=domain, version=1)
    return hidden


def restore(model: onnx.ModelProto, domain: str) -> None:
    """Give the nodes `hide` moved their default domain back, and drop the domain's import."""
    for node in model.graph.node:
        if node.domain == domain:
            node.domain = ""
    kept = [o for o in model.opset_import if o.domain != domain]
    del model.opset_import[:]
    model.opset_import.extend(kept)
