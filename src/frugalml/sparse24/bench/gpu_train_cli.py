"""``frugal sparse24 train --device cuda --dtype bfloat16`` for a few steps per backend and packing,
run as a child process: exit code, final validation loss vs the emulated run, tokens/s.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from typing import Any

import torch

from frugalml.common.report import Record
from frugalml.sparse24.bench.shared import SYSTEM, gpu_skip
from frugalml.sparse24.model import LlamaConfig

CLI_MODEL: dict[str, Any] = {
    "dim": 256,
    "layers": 2,
    "heads": 4,
    "hidden": 1024,
    "batch_size": 8,
    "seq_len": 128,
    "eval_every": 4,
    "threads": 1,
}
GREEDY_STE: dict[str, Any] = {
    "method": "ste",
    "transposable": True,
    "transposable_method": "greedy",
    "activations": "dense",
}
CLI_RUNS: dict[str, dict[str, Any]] = {
    "emulate (reference)": GREEDY_STE,
    "cusparselt": {**GREEDY_STE, "backend": "cusparselt"},
    "cusparselt, --packing rule": {**GREEDY_STE, "backend": "cusparselt", "packing": "rule"},
    "cusparselt + vnm:64:2:8 activations, sste": {"backend": "cusparselt", "activations": "vnm:64:2:8"},
}


def _cli_args(options: dict[str, Any]) -> list[str]:
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def _run_cli(options: dict[str, Any], history: str) -> tuple[int, str]:
    """``frugal sparse24 train`` in a child process; (exit code, output). Without typer in this Python
    it runs the same TrainConfig through the library and says so."""
    if importlib.util.find_spec("typer") is None:
        _train_in_library(options, history)
        return 0, "library path (the CLI needs typer, which is not installed)"
    command = [sys.executable, "-m", "frugalml.cli", "sparse24", "train", *_cli_args(options)]
    done = subprocess.run([*command, "--quiet", "--json", history], capture_output=True, text=True)
    return done.returncode, (done.stdout + done.stderr).strip()


def _train_in_library(options: dict[str, Any], history: str) -> None:
    """What ``frugal sparse24 train`` with ``options`` does, through the library; history to JSON."""
    from frugalml.common.corpus import stdlib_bytes
    from frugalml.sparse24.train import TrainConfig, train

    shape_keys = ("dim", "layers", "heads", "hidden", "threads")
    config = {k: v for k, v in options.items() if k not in shape_keys}
    config["activations"] = None if config.get("activations") == "dense" else config.get("activations")
    model = LlamaConfig(
        dim=options["dim"],
        hidden=options["hidden"],
        n_layers=options["layers"],
        n_heads=options["heads"],
        max_seq_len=options["seq_len"],
    )
    result = train(model, TrainConfig(**config), stdlib_bytes(), quiet=True)
    with open(history, "w") as f:
        json.dump({"history": result.history}, f)


def gpu_train_cli(steps: int = 8) -> list[Record]:
    """``frugal sparse24 train --device cuda --dtype bfloat16`` for a few steps per backend / packing:
    exit code, final validation loss (vs the emulated run with the same seed) and tokens/s."""
    skipped = gpu_skip("train CLI on cuda")
    if skipped:
        return skipped
    name, records, reference = torch.cuda.get_device_name(0), [], None
    for label, options in CLI_RUNS.items():
        with tempfile.TemporaryDirectory() as folder:
            history = f"{folder}/h.json"
            run = {
                "device": "cuda",
                "dtype": "bfloat16",
                "steps": steps,
                "sparse_fraction": 1,
                **CLI_MODEL,
                **options,
            }
            code, output = _run_cli(run, history)
            if code:
                records.append(
                    Record(
                        SYSTEM,
                        f"train CLI cuda bf16 {label}",
                        "failed",
                        "",
                        float(code),
                        notes=f"{name}; exit {code}: {output[-300:]}",
                    )
                )
                continue
            with open(history) as f:
                entry = json.load(f)["history"][-1]
        emulated = label.startswith("emulate")
        reference = entry["val_loss"] if emulated else reference
        records.append(
            Record(
                SYSTEM,
                f"train CLI cuda bf16 {label}: {steps} sparse steps, 2x256/1024 relu2, 8x128 tokens",
                "validation loss",
                "nats/byte",
                entry["val_loss"],
                peer=None if emulated else "emulate (same CLI run, seed)",
                peer_value=None if emulated else reference,
                higher_is_better=False,
                spread={"tokens_per_s": entry.get("tokens_per_s")},
                notes=f"{name}; exit 0; {_cli_args(options)}; {output[-200:]}",
            )
        )
    return records
