"""Re-score fixed architectures with a stronger MAD proxy (more tasks, seeds, width, steps) and correlate.

Tests whether the weak MAD-vs-LM fidelity comes from a noisy MAD table (one seed, width 32, two
tasks). Every (architecture, task, seed) is trained once through a process pool and stored in the
SQLite result cache as it finishes, so a killed run resumes; the JSON is rewritten after each
result (raw accuracies) and after each complete seed (the analysis). The analysis reports, against
minus the LM validation loss of the LM runs:

* the pre-registered proxy score (mean accuracy over all tasks and seeds) with a bootstrap CI;
* the Spearman rho of each task alone, and the seed-to-seed rank agreement of each task;
* a post hoc aggregate (mean of z-scored accuracies of the tasks whose rho is positive), chosen
  on these same architectures: descriptive only, not evidence of fidelity.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from frugalml.common.files import atomic_write
from frugalml.common.parsing import comma_list
from frugalml.common.report import Record, print_table, write_json
from frugalml.composer.bench.fidelity import bootstrap_spearman, rho_record
from frugalml.composer.cache import ResultCache, config_key
from frugalml.composer.evaluator import make_executor, run_job
from frugalml.composer.mad import TASKS, MADTask, preset
from frugalml.composer.proxies import MADProxy, ModelShape, TrainConfig
from frugalml.composer.tabular import BUILTIN

DEFAULT_CACHE = Path.home() / ".cache" / "frugalml" / "composer" / "fidelity_mad.sqlite"
Accuracies = dict[tuple[str, str, int], float]


def zscore(values: np.ndarray) -> np.ndarray:
    """``values`` standardised to mean 0 and standard deviation 1 (all zeros when constant).

    Examples
    --------
    >>> zscore(np.array([1.0, 3.0])).tolist(), zscore(np.ones(2)).tolist()
    ([-1.0, 1.0], [0.0, 0.0])
    """
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def _pairs(seeds: list[int]) -> list[tuple[int, int]]:
    return [(s, u) for i, s in enumerate(seeds) for u in seeds[i + 1 :]]


@dataclass(frozen=True)
class Study:
    """The architectures, tasks and LM losses of one analysis, and a label of its setting."""

    picks: list[str]
    tasks: list[str]
    neg_loss: list[float]
    table: dict[str, Any]
    setting: str


NOTE = "95% CI from 5000 bootstrap resamples of the architectures; LM loss: mean over 3 GPU seeds"


def _task_entry(study: Study, t: str, seeds: list[int], acc: Accuracies, scores: np.ndarray, label: str):
    """The summary of task ``t`` alone, and its fidelity record when it ranks the architectures."""
    picks = study.picks
    entry: dict[str, Any] = {
        "mean_accuracy": dict(zip(picks, scores.tolist(), strict=True)),
        "span": float(scores.max() - scores.min()),
        "seed_sd": float(np.mean([np.std([acc[a, t, s] for s in seeds]) for a in picks])),
    }
    record = None
    if len(set(scores.tolist())) > 2:
        r, lo, hi = bootstrap_spearman(list(scores), study.neg_loss)
        entry["spearman_vs_lm"] = {"rho": r, "ci95": [lo, hi]}
        record = rho_record(f"proxy fidelity: MAD task {t} alone vs LM loss ({label})", (r, lo, hi), NOTE)
    else:
        entry["spearman_vs_lm"] = None  # (nearly) constant over the architectures: no ranking
    if len(seeds) > 1:
        rhos = [
            spearmanr([acc[a, t, s] for a in picks], [acc[a, t, u] for a in picks]).statistic
            for s, u in _pairs(seeds)
        ]
        entry["seed_to_seed_rho"] = float(np.nanmean(rhos))
    return entry, record


def _old_table(study: Study, mean_score: np.ndarray) -> dict[str, Any]:
    """How the built-in one-seed table's scores (overall and per task) rank against the LM."""
    picks, table = study.picks, study.table
    old = [table["scores"][a] for a in picks]
    r, lo, hi = bootstrap_spearman(old, study.neg_loss)
    summary: dict[str, Any] = {
        "rho": r,
        "ci95": [lo, hi],
        "rho_vs_new_mean_score": float(spearmanr(old, mean_score).statistic),
        "per_task": {},
    }
    for t in table["per_task"][picks[0]]:
        r, lo, hi = bootstrap_spearman([table["per_task"][a][t] for a in picks], study.neg_loss)
        summary["per_task"][t] = {"rho": r, "ci95": [lo, hi]}
    return summary


def analyse(study: Study, seeds: list[int], acc: Accuracies) -> tuple[list[Record], dict[str, Any]]:
    """Records and a summary of the fidelity of the complete seeds ``seeds``."""
    picks, tasks = study.picks, study.tasks
    per_task = {t: np.array([np.mean([acc[a, t, s] for s in seeds]) for a in picks]) for t in tasks}
    mean_score = np.mean([per_task[t] for t in tasks], axis=0)
    label = f"{len(picks)} archs, {study.setting}, seeds {seeds}"
    rho, low, high = bootstrap_spearman(list(mean_score), study.neg_loss)
    records = [
        rho_record(
            f"proxy fidelity: MAD mean accuracy over {len(tasks)} tasks vs LM loss ({label})",
            (rho, low, high),
            "pre-registered proxy score (all tasks, equal weight); " + NOTE,
        )
    ]
    summary: dict[str, Any] = {
        "seeds": seeds,
        "mean_score": dict(zip(picks, mean_score.tolist(), strict=True)),
        "spearman_mean_score": {"rho": rho, "ci95": [low, high]},
        "per_task": {},
    }
    if len(seeds) > 1:
        by_seed = {s: [np.mean([acc[a, t, s] for t in tasks]) for a in picks] for s in seeds}
        summary["mean_score_seed_to_seed_rho"] = float(
            np.mean([spearmanr(by_seed[s], by_seed[u]).statistic for s, u in _pairs(seeds)])
        )
    for t in tasks:
        summary["per_task"][t], record = _task_entry(study, t, seeds, acc, per_task[t], label)
        if record is not None:
            records.append(record)
    informative = [t for t in tasks if (summary["per_task"][t]["spearman_vs_lm"] or {}).get("rho", 0) > 0]
    if informative:
        post_hoc = np.mean([zscore(per_task[t]) for t in informative], axis=0)
        r, lo, hi = bootstrap_spearman(list(post_hoc), study.neg_loss)
        summary["post_hoc"] = {"tasks": informative, "rho": r, "ci95": [lo, hi]}
        records.append(
            rho_record(
                f"POST HOC: mean z-scored accuracy of the tasks with rho > 0 "
                f"({', '.join(informative)}) vs LM loss ({label})",
                (r, lo, hi),
                "tasks chosen on these same 10 architectures: optimistic, descriptive only, not evidence",
            )
        )
    summary["old_table"] = _old_table(study, mean_score)
    return records, summary


@dataclass
class MadFidelitySettings:
    """The stronger MAD proxy, the LM runs it is judged against, its cache and the results' name."""

    lm_runs: Path
    width: int = 64
    heads: int = 2
    steps: int = 150
    batch: int = 64
    lr: float = 5e-3
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    tasks: str = ",".join(TASKS)
    memorization_vocab: int = 256
    workers: int = 2
    picks: str | None = None
    cache: Path = DEFAULT_CACHE
    out: str = "fidelity-mad"

    def shape(self) -> ModelShape:
        return ModelShape(width=self.width, heads=self.heads, kv_heads=1, mlp_ratio=2.0, window=8)

    def task_settings(self, tasks: list[str]) -> dict[str, MADTask]:
        """The CPU preset of each task, memorization with the published vocabulary."""
        return {
            t.name: (
                replace(t, vocab_size=self.memorization_vocab, seq_len=32) if t.name == "memorization" else t
            )
            for t in preset("cpu", tasks)
        }

    def describe(self, tasks: list[str]) -> str:
        mem = f", memorization vocab {self.memorization_vocab}" if "memorization" in tasks else ""
        return (
            f"MAD cpu preset ({', '.join(tasks)}{mem}), width {self.width}, {self.steps} steps x "
            f"{self.batch}, lr {self.lr}"
        )


class MadFidelityRun:
    """The cached accuracies, the jobs still to run, and the analysis of the complete seeds."""

    def __init__(self, s: MadFidelitySettings, results: Path):
        self.s, self.results = s, Path(results)
        lm = json.loads(Path(s.lm_runs).read_text())
        picks = comma_list(s.picks, name="architecture") if s.picks else lm["picks"]
        lm_width = lm["settings"]["width"]
        tasks: list[str] = comma_list(s.tasks, name="task")
        table = json.loads((resources.files("frugalml.composer") / BUILTIN).read_text())
        neg_loss = [-lm["runs"][f"{a}@{lm_width}"]["val_loss"] for a in picks]
        self.study = Study(picks, tasks, neg_loss, table, s.describe(tasks))
        self.settings = s.task_settings(tasks)
        train = TrainConfig(steps=s.steps, batch_size=s.batch, learning_rates=(s.lr,), threads=1)
        self.proxies = {t: MADProxy(tasks=(self.settings[t],), shape=s.shape(), train=train) for t in tasks}
        self.cache = ResultCache(s.cache)
        self.acc: Accuracies = {}
        self.seconds: list[float] = []
        self.records: list[Record] = []
        self.summary: dict[str, Any] = {}

    def todo(self) -> list[tuple[MADProxy, str, int]]:
        """Jobs not in the cache (seed-major: an early stop leaves whole seeds); reads the cached ones."""
        keys = {t: config_key("mad", p.config()) for t, p in self.proxies.items()}
        jobs = []
        for seed in self.s.seeds:
            for arch in self.study.picks:
                for t in self.study.tasks:
                    hit = self.cache.get(arch, "mad", keys[t], seed)
                    if hit is None:
                        jobs.append((self.proxies[t], arch, seed))
                    else:
                        self.acc[arch, t, seed] = hit.score
                        self.seconds.append(hit.seconds)
        return jobs

    def complete_seeds(self) -> list[int]:
        picks, tasks = self.study.picks, self.study.tasks
        return [s for s in self.s.seeds if all((a, t, s) in self.acc for a in picks for t in tasks)]

    def refresh(self) -> None:
        seeds = self.complete_seeds()
        if seeds:
            self.records, self.summary = analyse(self.study, seeds, self.acc)

    def save(self) -> None:
        """Rewrite ``<out>-runs.json`` (raw accuracies and analysis) and ``<out>.json`` (records)."""
        study = self.study
        doc = {
            "settings": {
                **asdict(self.s),
                "task_settings": {t: self.settings[t].to_dict() for t in study.tasks},
                "shape": self.s.shape().__dict__,
            },
            "picks": study.picks,
            "lm_val_loss": dict(zip(study.picks, [-x for x in study.neg_loss], strict=True)),
            "accuracy": {f"{a}|{t}|{s}": v for (a, t, s), v in sorted(self.acc.items())},
            "job_seconds_median": float(np.median(self.seconds)) if self.seconds else None,
            "analysis": self.summary,
        }
        with atomic_write(self.results / f"{self.s.out}-runs.json", "w") as f:
            json.dump(doc, f, indent=1, default=str)
        if self.records:
            write_json(self.records, self.results / f"{self.s.out}.json")

    def record(self, result: dict[str, Any]) -> str:
        """Store one finished job in the cache and the accuracies; its task name."""
        ((t, _),) = result["metrics"]["per_task"].items()
        self.cache.put(
            result["arch"],
            "mad",
            self.proxies[t].config(),
            result["seed"],
            result["score"],
            result["metrics"],
            result["seconds"],
        )
        self.acc[result["arch"], t, result["seed"]] = result["score"]
        self.seconds.append(result["seconds"])
        return t


def run_fidelity_mad(settings: MadFidelitySettings, results: Path) -> list[Record]:
    """Run every missing job, re-analysing after each complete seed; returns the records."""
    run = MadFidelityRun(settings, results)
    todo = run.todo()
    run.refresh()
    run.save()
    print(f"{len(todo)} jobs to run, {len(run.acc)} cached", flush=True)
    executor = make_executor("local", workers=settings.workers)
    start = time.perf_counter()
    done_seeds = len(run.complete_seeds())
    for n, result in enumerate(executor.map(run_job, todo), 1):
        t = run.record(result)
        print(
            f"[{n}/{len(todo)}] {result['arch']} {t} seed {result['seed']}: {result['score']:.4f} "
            f"({result['seconds']:.1f} s, {time.perf_counter() - start:.0f} s total)",
            flush=True,
        )
        if len(run.complete_seeds()) > done_seeds:
            done_seeds = len(run.complete_seeds())
            run.refresh()
        run.save()
    executor.close()
    run.refresh()
    run.save()
    if run.records:
        print_table(run.records, title="composer: MAD proxy fidelity")
    return run.records
