"""Concept coverage on raw University course descriptions: our matcher vs the authors' bag of words.

Usage: FRUGAL_DATA=../shared/data python benchmarks/prereq/concept_coverage.py
Writes benchmarks/results/prereq/concept-coverage.json.
"""

from pathlib import Path

from frugalml.prereq.bench.coverage import run

if __name__ == "__main__":
    run(json_path=Path(__file__).resolve().parents[1] / "results" / "prereq" / "concept-coverage.json")
