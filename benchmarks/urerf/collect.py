"""Merge benchmarks/results/urerf/*.json into benchmarks/results/urerf/summary.json and summary.png."""

from __future__ import annotations

import argparse

from frugalml.urerf.bench.collect import collect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", nargs="?", default="benchmarks/results/urerf", help="Results folder.")
    count, path = collect(parser.parse_args().folder)
    print(f"{count} records -> {path}, {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
