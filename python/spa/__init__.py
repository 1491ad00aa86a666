"""SPA: Structurally Prune Anything.

`spa.load(path)` gives a Model (see spa.model) with `coupling_groups()`,
`plan(...)`, `prune(plan)` and `save(path)`.
"""

__version__ = "0.1.0"

from spa.target import Target  # noqa: E402 - light: loads no MLIR

__all__ = ["Target", "load"]


def load(source, config=None):
    """Import an ONNX model (path or ModelProto); see spa.model.load."""
    from spa.model import load as _load

    return _load(source) if config is None else _load(source, config)
