"""`spa sweep`: prune a model at every target with every criterion, and compare what comes out.

Each (criterion, target) combination is one task on an execution backend
(spa.execution: local processes or Ray). A task prunes the model with
verification, then measures the pruned model: parameters, MACs, onnxruntime
latency, and how closely its outputs follow the dense model's on the
evaluation inputs (calibration samples, else inputs made from the declared
ones): the top-1 agreement of classifier outputs and the relative output
error. The sweep writes each pruned model, a table (results.csv and
results.json) and the Pareto front of agreement against latency
(pareto.html, in spa report's style).

- `task`: one combination, as a task;
- `front`: the Pareto front and the files.
"""

from __future__ import annotations

from spa.sweep.front import pareto_front, write_results
from spa.sweep.task import Combination, SweepInputs, run_sweep

__all__ = ["Combination", "SweepInputs", "pareto_front", "run_sweep", "write_results"]
