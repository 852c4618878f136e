"""cleave: plan, simulate and run foundation-model training on many weak edge devices.

Pipeline: a model spec (:func:`load_model`) and a batch give the op graph (:func:`build_graph`);
a pool of devices (:func:`make_pool` / :func:`load_pool`) and the graph give a plan
(:func:`plan`: tile grids, device selection, the LP split, ``explain()``); the plan is evaluated
by the analytic model (:func:`analytic_step`) or the discrete-event simulator
(:func:`simulate_step`), next to the baselines (:func:`run_baselines`, searched in closed form,
and each one's best configuration run as a task graph: :func:`simulate_baseline`). Names are imported on
first use, so ``import frugalml.cleave`` stays light (numba loads only when needed).
"""

from frugalml.common.exports import lazy_exports

_EXPORTS = {
    "analytic": ("StepEstimate", "analytic_step", "micro_batch_parts", "overlap_step", "step_floor"),
    "baselines": ("BaselineResult", "cloud", "run_baselines"),
    "des": ("SimConfig", "SimResult", "simulate_step"),
    "devices": ("DeviceClass", "ParameterServer", "Pool", "load_catalogue", "load_pool", "make_pool"),
    "energy": ("EnergyReport", "cloud_energy", "edge_energy"),
    "models": ("BUILTIN", "ModelSpec", "load_model", "spec_from_dict"),
    "opgraph": ("Gemm", "OpGraph", "PsOp", "build_graph"),
    "pipeline": ("PipelineConfig", "PipelineRun", "pipeline_seconds", "simulate_pipeline"),
    "planfile": ("ExecutablePlan", "PlannedGemm", "executable_plan", "read_plan", "write_plan"),
    "planner": ("Plan", "plan", "plan_micro_batch"),
    "regimes": ("Cell", "Grid", "des_agreement", "regime_map"),
    "taskgraphs": ("simulate_baseline",),
    "tiling": ("TaskCost", "Tile", "TileGrid", "best_grid", "choose_grid", "grid_cost", "split_gemm"),
    "traces": ("TraceSet", "load_traces"),
    "validate": ("Overheads", "load_overheads", "run_validation"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
