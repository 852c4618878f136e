"""cleave runtime: a gRPC parameter server and device workers that train a model from GEMM tiles.

Names are imported lazily, so mounting the CLI does not import torch or grpc.
"""

from importlib import import_module

_EXPORTS = {
    "ParameterServer": "server",
    "ServerConfig": "server",
    "serve": "server",
    "Worker": "worker",
    "WorkerConfig": "worker",
    "WorkerSummary": "worker",
    "run_worker": "worker",
    "Scheduler": "scheduler",
    "SchedulerConfig": "scheduler",
    "Profile": "scheduler",
    "TrainConfig": "model",
    "GPTConfig": "model",
    "TinyGPT": "model",
    "train_single_process": "model",
    "gemm_shapes": "model",
    "TiledLinear": "gemm",
    "RemoteLinearFunction": "gemm",
    "choose_grid": "gemm",
    "freivalds_check": "verify",
    "TokenBucket": "shaping",
    "parse_rate": "shaping",
    "parse_size": "shaping",
    "fetch_status": "client",
    "LocalCluster": "local",
    "run_local": "demo",
    "add_runtime_commands": "cli",
    "PROTOCOL_VERSION": "protocol",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
