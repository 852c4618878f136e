"""Pairwise-Link-LDA seconds per EM iteration and peak memory vs gensim batch LDA (frugal prereq bench).

Usage: FRUGAL_DATA=../shared/data python benchmarks/prereq/plda_speed.py
Writes benchmarks/results/prereq/plda-speed.json.
"""

from pathlib import Path

from frugalml.prereq.bench.speed import run

if __name__ == "__main__":
    run(json_path=Path(__file__).resolve().parents[1] / "results" / "prereq" / "plda-speed.json")
