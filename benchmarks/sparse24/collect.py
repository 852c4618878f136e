"""Merge the sparse24 result files (CPU speed, quality, GPU if any) into results/sparse24.json."""

from __future__ import annotations

from pathlib import Path

from frugalml.common.report import Record, read_json, write_json

RESULTS = Path(__file__).resolve().parents[1] / "results"
PARTS = (
    "sparse24-speed-cpu.json",
    "sparse24-quality.json",
    "sparse24-quality-3m.json",
    "sparse24-quality-tricks.json",
    "sparse24-quality-tricks-seed1.json",
    "sparse24-quality-3m-tricks.json",
    "sparse24-gpu.json",
)

if __name__ == "__main__":
    records = []
    for name in PARTS:
        if (RESULTS / name).exists():
            for row in read_json(RESULTS / name):
                row.pop("ratio", None)
                records.append(Record(**{**row, "notes": f"{row['notes']} [from {name}]".strip()}))
    if not (RESULTS / "sparse24-gpu.json").exists():
        records.append(
            Record(
                "sparse24",
                "GPU speed (FFN fwd+bwd 1B/7B, Llama-1B step)",
                "not measured",
                "",
                0.0,
                notes="no GPU was available; run benchmarks/sparse24/gpu.sh on one",
            )
        )
    write_json(records, RESULTS / "sparse24.json")
    print(f"{len(records)} records -> {RESULTS / 'sparse24.json'}")
