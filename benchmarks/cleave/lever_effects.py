"""What each lever setting does on the whole regime map (results: lever-effects.json).

Reads the maps `frugal cleave compare` wrote in benchmarks/results/cleave/ (compare.json: today's
plan; compare-<setting>.json: the same grid with levers on) and writes, per setting against today's
map, the step and each floor as ratios after / before, the cells where the winner flips and the
fraction of cells Cleave wins before and after; "best" takes, per cell, the fastest of the settings
given (every lever that helps, chosen per cell). Run:
.venv/bin/python benchmarks/cleave/lever_effects.py overlap overlap-ps32 overlap-all
"""

import argparse
import json
from dataclasses import replace
from pathlib import Path

from frugalml.cleave.regimes import cell_from_dict, lever_effect
from frugalml.common.report import Record, write_json

RESULTS = Path(__file__).resolve().parents[1] / "results" / "cleave"
COMMAND = ".venv/bin/python benchmarks/cleave/lever_effects.py"


def load(name: str):
    doc = json.loads((RESULTS / f"{name}.json").read_text())
    return [cell_from_dict(c) for c in doc["cells"]]


def record(setting: str, effect: dict, args: list[str]) -> Record:
    return Record(
        system="cleave",
        workload=f"regime map ({effect['cells']} cells), Cleave with {effect['levers_after'] or 'no lever'} "
        f"vs today's plan ({effect['levers_before'] or 'no lever'})",
        metric="cells_cleave_wins",
        unit="cells",
        ours=effect["wins_after"],
        peer="today's plan",
        peer_value=effect["wins_before"],
        higher_is_better=True,
        spread=effect,
        notes=f"setting {setting}; of {effect['rival_cells']} cells where an edge baseline runs; "
        "analytic model; levers other than resident weights are simulator options",
        command=" ".join([COMMAND, *args]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", help="map stems after 'compare-' (e.g. overlap)")
    parser.add_argument("--out", type=Path, default=RESULTS / "lever-effects.json")
    args = parser.parse_args()
    before = load("compare")
    maps = {s: load(f"compare-{s}") for s in args.settings}
    records = [record(s, lever_effect(before, cells), args.settings) for s, cells in maps.items()]
    if len(maps) > 1:
        best = []
        for cells in zip(*maps.values(), strict=True):
            fastest = min(cells, key=lambda c: c.cleave_s)
            ratio = fastest.baseline_s / fastest.cleave_s
            best.append(replace(fastest, ratio=ratio, levers=f"per cell the best of: {', '.join(maps)}"))
        records.append(record("best", lever_effect(before, best), args.settings))
    write_json(records, args.out)
    for r in records:
        e = r.spread
        print(
            f"{r.workload}: wins {e['wins_before']} -> {e['wins_after']} of {e['rival_cells']}; step "
            f"{e['speedup_median']:.2f}x median ({e['speedup_min']:.2f}-{e['speedup_max']:.2f}x); "
            f"binding floor x{e['binding_floor_ratio_median']:.2f}; flips to win "
            f"{len(e['flips_to_win'])}, to loss {len(e['flips_to_loss'])}"
        )


if __name__ == "__main__":
    main()
