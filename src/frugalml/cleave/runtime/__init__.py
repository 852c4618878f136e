"""cleave runtime: a gRPC parameter server and device workers that train a model from GEMM tiles.

Names are imported lazily, so mounting the CLI does not import torch or grpc.
"""

from frugalml.common.exports import lazy_exports

_EXPORTS = {
    "server": ("ParameterServer", "ServerConfig", "serve"),
    "worker": ("Worker", "WorkerConfig", "WorkerSummary", "run_worker"),
    "scheduler": ("Scheduler", "SchedulerConfig", "Profile"),
    "model": ("TrainConfig", "GPTConfig", "TinyGPT", "train_single_process", "gemm_shapes"),
    "gemm": ("TiledLinear", "RemoteLinearFunction"),
    "verify": ("freivalds_check",),
    "shaping": ("TokenBucket", "parse_rate", "parse_size"),
    "client": ("fetch_status",),
    "local": ("LocalCluster",),
    "demo": ("run_local",),
    "cli": ("add_runtime_commands",),
    "protocol": ("PROTOCOL_VERSION",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
