"""Proxy study: seed-to-seed reliability of the proxy against its CPU cost, one factor at a time.

Evaluates a fixed sample of architectures of a space (default: the 125 three-layer strings over
A, L, C, S, M) with several training seeds at each study point: the base MAD setting, then training
steps, width, sequence length, vocabulary size (task difficulty), number of MAD tasks and the
byte-level LM proxy's steps, each varied alone. Reports, per point, the mean Spearman rho between
two single seeds (and among the better half of the sample) and the CPU-seconds per architecture;
names the cheapest point reaching the target reliability. Every evaluation is cached in SQLite,
so a killed run resumes where it stopped; ``--cpu-minutes`` stops it between batches.

    python benchmarks/composer/proxy_study.py --archs 12 --seeds 0,1,2
    python benchmarks/composer/proxy_study.py --factor steps=100,300 --factor width=32,64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from frugalml.common.data import cache_dir
from frugalml.common.errors import FrugalError, InvalidInputError
from frugalml.common.parsing import comma_list
from frugalml.common.report import Record, print_table, write_json
from frugalml.composer.bench.proxy_study import (
    FACTORS,
    StudyBase,
    StudyRun,
    choose,
    plot_study,
    run_study,
    study_points,
)
from frugalml.composer.evaluator import make_executor

RESULTS = Path(__file__).resolve().parents[1] / "results" / "composer"


def parse_factor(text: str) -> tuple[str, tuple]:
    """``steps=100,300`` -> ("steps", (100, 300)); ``tasks`` levels are ``+``-joined task lists."""
    name, sep, levels = text.partition("=")
    if not sep or name not in FACTORS:
        raise InvalidInputError(
            f"--factor takes NAME=LEVELS with NAME one of {', '.join(FACTORS)}; got {text!r}"
        )
    if name == "tasks":
        return name, tuple(level.replace("+", ",") for level in comma_list(levels, name="level"))
    return name, tuple(comma_list(levels, int, name="level"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primitives", default="ALCSM", help="Primitives of the space (default ALCSM).")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--archs", type=int, default=12, help="Architectures in the fixed sample.")
    parser.add_argument("--seeds", default="0,1,2", help="Training seeds (at least two).")
    parser.add_argument(
        "--factor",
        action="append",
        default=None,
        help="NAME=LEVELS to study (repeatable; default every factor at its default levels); "
        "tasks levels join task names with '+', e.g. tasks=recall,recall+selective_copy",
    )
    parser.add_argument("--from-table", default=None, help="Sample the --top best of this table instead.")
    parser.add_argument("--top", type=int, default=0, help="With --from-table: how many of its best.")
    parser.add_argument("--cpu-minutes", type=float, default=None, help="Stop after this much CPU.")
    parser.add_argument("--workers", type=int, default=1, help="Local worker processes.")
    parser.add_argument("--target", type=float, default=0.8, help="Reliability to aim at.")
    parser.add_argument("--cache", default=str(cache_dir() / "composer" / "proxy-study.sqlite"))
    parser.add_argument("--out", default="proxy-study", help="Name of the results files (JSON and PNG).")
    parser.add_argument("--results", default=str(RESULTS), help="Folder of the results files.")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    try:
        factors = dict(parse_factor(f) for f in args.factor) if args.factor else dict(FACTORS)
        points = study_points(StudyBase(), factors)
        run = StudyRun(
            args.primitives,
            args.layers,
            args.archs,
            args.seeds,
            args.cpu_minutes,
            args.cache,
            log=(lambda _: None) if args.quiet else print,
            from_table=args.from_table,
            top=args.top,
        )
        executor = make_executor("inline" if args.workers == 1 else "local", workers=args.workers)
        records, stopped = run_study(run, points, executor)
    except FrugalError as exc:
        raise SystemExit(f"error: {exc}") from None
    if not records:
        raise SystemExit(f"no study point completed: {stopped}")
    choice = choose(records, args.target)
    summary = Record(
        "composer",
        f"proxy study: the cheapest setting with single-seed rho >= {args.target} (overall and top half)",
        "seed-to-seed Spearman rho",
        "rho",
        choice["chosen_rho"] if choice["chosen"] else choice["most_reliable_rho"],
        higher_is_better=True,
        spread={**choice, "points_done": len(records), "points_planned": len(points), "stopped": stopped},
        notes="no point reaches the target: the value is the most reliable point's rho"
        if choice["chosen"] is None
        else "",
    )
    print_table(records + [summary], title="composer: proxy reliability vs CPU cost")
    print(json.dumps(choice, indent=1))
    out = Path(args.results) / args.out
    write_json(records + [summary], f"{out}.json")
    plot_study(records, f"{out}.png", args.target)
    print(f"wrote {out}.json and .png ({len(records)} of {len(points)} points; {stopped})")


if __name__ == "__main__":
    main()
