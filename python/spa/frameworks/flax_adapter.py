"""Prune a Flax NNX module with SPA and get the pruned module and parameters back.

    import spa.flax
    result = spa.flax.prune(module, example_inputs, criterion="l2", ratio=0.3)
    module, params = result.module, result.params   # a pruned copy, and its parameters by path

jax2onnx names initializers generically (const_3, kernel_oih_0) and may
store a kernel transposed, so the names cannot be matched to parameters.
Instead the module is exported twice: once with every variable replaced by
unique random values, whose initializers are matched to the variables (as
they are or transposed), and once with the real values, which SPA prunes.
The pruned initializers are mapped back through the same permutations, the
width attributes of Linear/Conv/BatchNorm/LayerNorm are fixed, and the
pruned module is checked against the pruned ONNX model in onnxruntime.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from spa.frameworks.pipeline import PrunedExport, as_tuple
from spa.frameworks.protocol import FrameworkAdapter, PruneResult, as_list, prune_with


FlaxPruneResult = PruneResult  # `result.module` is the pruned module, `result.params` its variables


def _variables(module: Any) -> list[tuple[tuple, Any]]:
    from flax import nnx

    return [(path, variable) for path, variable in nnx.state(module).flat_state()]


def _get(variable: Any) -> np.ndarray:
    return np.asarray(variable.get_value() if hasattr(variable, "get_value") else variable.value)


def _set(variable: Any, value: np.ndarray) -> None:
    if hasattr(variable, "set_value"):
        variable.set_value(value)
    else:
        variable.value = value


def _export(module: Any, inputs: tuple) -> onnx.ModelProto:
    from jax2onnx import to_onnx

    return to_onnx(module, [("B", *np.shape(x)[1:]) for x in inputs])


def _match(fingerprinted: onnx.ModelProto, values: dict[tuple, np.ndarray]) -> dict[str, tuple[tuple, tuple]]:
    """Initializer name -> (variable path, permutation p with initializer == variable.transpose(p))."""
    by_size: dict[int, list[tuple]] = {}
    for path, value in values.items():
        by_size.setdefault(value.size, []).append(path)
    matches = {}
    for tensor in fingerprinted.graph.initializer:
        array = numpy_helper.to_array(tensor)
        for path in by_size.get(array.size, []):
            value = values[path]
            if value.ndim != array.ndim or array.size < 2:
                continue
            for perm in itertools.permutations(range(value.ndim)):
                transposed = np.transpose(value, perm)
                if transposed.shape == array.shape and np.array_equal(transposed, array):
                    matches[tensor.name] = (path, perm)
                    break
            if tensor.name in matches:
                break
    return matches


def prune(module: Any, example_inputs: Any, criterion: str = "l1", tolerance: float = 1e-4,
          **plan_options: Any) -> PruneResult:
    """Prune a Flax NNX module (left unchanged) and return a pruned copy and its parameters.

    `example_inputs` is an array or tuple of arrays (the first axis is the
    batch); `criterion` and `plan_options` are those of `spa.Model.plan`.
    Raises SPAError if a variable the pruned graph changes cannot be matched,
    or the pruned module differs from the pruned ONNX model by more than
    `tolerance`.
    """
    inputs = tuple(np.asarray(x, dtype=np.float32) for x in as_tuple(example_inputs))
    adapter = FlaxAdapter()
    result = prune_with(adapter, module, inputs, criterion, tolerance, **plan_options)
    result.extras["params"] = adapter.params
    return result


class FlaxAdapter(FrameworkAdapter):
    """Flax NNX for spa.frameworks.protocol.prune_with. jax2onnx names initializers its own way, so each is
    matched to its variable by exporting a copy whose variables hold random fingerprints."""

    label, model_name = "Flax adapter", "module"

    def __init__(self) -> None:
        self.params: dict[tuple, np.ndarray] = {}  # the pruned module's variables by path
        self._fingerprints: dict[tuple, np.ndarray] = {}
        self._matches: dict[str, tuple[tuple, tuple]] = {}

    def export(self, module: Any, inputs: tuple) -> onnx.ModelProto:
        self._fingerprints, self._matches = _fingerprint(module, inputs)
        return _export(module, inputs)

    def pruned_copy(self, module: Any, pruned: PrunedExport) -> Any:
        from flax import nnx

        result = nnx.clone(module)
        variables = dict(_variables(result))
        self.params = {path: _get(variable) for path, variable in variables.items()}
        for name, (path, perm) in self._matches.items():
            if name in pruned.arrays:
                self.params[path] = np.transpose(pruned.arrays[name], np.argsort(perm))
        for path, variable in variables.items():
            if path in self._fingerprints or self.params[path].shape != _get(variable).shape:
                _set(variable, self.params[path])
        _fix_widths(result)
        return result

    def outputs(self, module: Any, inputs: tuple) -> list[np.ndarray]:
        return [np.asarray(e) for e in as_list(module(*inputs))]


def _fingerprint(module: Any, inputs: tuple) -> tuple[dict[tuple, np.ndarray], dict[str, tuple[tuple, tuple]]]:
    """Random values for a clone's float variables, and the initializers of its export they appear as."""
    from flax import nnx

    fingerprint = nnx.clone(module)
    rng = np.random.default_rng(0)
    fingerprints = {}
    for path, variable in _variables(fingerprint):
        value = _get(variable)
        if np.issubdtype(value.dtype, np.floating) and value.size:
            fingerprints[path] = rng.standard_normal(value.shape).astype(value.dtype)
            _set(variable, fingerprints[path])
    return fingerprints, _match(_export(fingerprint, inputs), fingerprints)


def _fix_widths(module: Any) -> None:
    """Width attributes that Flax layers read back (features, num_features) follow their parameters."""
    from flax import nnx

    for _, layer in module.iter_modules():
        if isinstance(layer, (nnx.Linear, nnx.Conv)):
            kernel = _get(layer.kernel)
            layer.in_features, layer.out_features = int(kernel.shape[-2]) * getattr(layer, "feature_group_count", 1), \
                int(kernel.shape[-1])
        elif isinstance(layer, (nnx.BatchNorm, nnx.LayerNorm)):
            source = layer.scale if getattr(layer, "scale", None) is not None else layer.mean
            layer.num_features = int(_get(source).shape[-1])
