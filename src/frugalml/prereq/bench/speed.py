"""Speed and memory of Pairwise-Link-LDA on a real corpus, against gensim's batch LDA (no links).

gensim's ``LdaModel`` is the field's variational LDA; run in batch mode (``update_every=0``) with
the same topics, variational iterations and passes, it does the word half of our work, so the
ratio says what the links cost on top of plain LDA. Peak memory is measured in a fresh process.
"""

from __future__ import annotations

import multiprocessing
import resource
import time

import numpy as np

from frugalml.common import env
from frugalml.common.report import Record


def _fit_ours(counts, links, topics: int, iters: int) -> int:
    from frugalml.prereq.plda import PairwiseLinkLDA

    model = PairwiseLinkLDA(topics, max_em_iter=iters, em_tol=1e-12, seed=0).fit(counts, links)
    return model.n_iter_


def _fit_gensim(counts, topics: int, iters: int) -> None:
    import scipy.sparse as sp
    from gensim.matutils import Sparse2Corpus
    from gensim.models import LdaModel

    corpus = Sparse2Corpus(sp.csc_matrix(counts.T.astype(np.int64)))
    LdaModel(
        corpus,
        num_topics=topics,
        passes=iters,
        iterations=20,
        update_every=0,
        chunksize=counts.shape[0],
        alpha=0.01,
        random_state=0,
    )


def _peak_child(dataset: str, topics: int, iters: int, queue) -> None:
    from frugalml.prereq import data

    corpus = data.load(dataset).corpus
    _fit_ours(corpus.counts[:4], np.zeros((0, 2)), 2, 1)  # compile the numba kernel
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu = time.perf_counter(), time.process_time()
    n = _fit_ours(corpus.counts, corpus.links, topics, iters)
    queue.put(
        (
            (time.perf_counter() - start) / n,
            (time.process_time() - cpu) / n,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            before / 1024,
        )
    )


def run(
    dataset: str = "university", topics: int = 100, iters: int = 3, rounds: int = 3, json_path=None
) -> list[Record]:
    """Time ``iters`` EM iterations of ours and of gensim (interleaved rounds; none when
    ``rounds`` is 0), and the wall time, CPU time and peak memory of a fit in a fresh process."""
    from frugalml.common import report, timing
    from frugalml.prereq import data

    corpus = data.load(dataset).corpus
    records = []
    if rounds:
        _fit_ours(corpus.counts, corpus.links, topics, 1)  # compile the numba kernel
        comparison = timing.compare(
            lambda: _fit_ours(corpus.counts, corpus.links, topics, iters),
            lambda: _fit_gensim(corpus.counts, topics, iters),
            rounds=rounds,
            warmup=0,
        )
        workload = (
            f"{dataset} K={topics}, {iters} EM iterations ({corpus.n_docs} docs, "
            f"{corpus.counts.shape[1]} words, {len(corpus.links)} links)"
        )
        records.append(
            Record.from_comparison(
                comparison,
                system="prereq",
                workload=workload,
                peer="gensim LdaModel batch (no links)",
                notes=f"medians of interleaved rounds on {env.machine(load=True)}; ours also models links",
            )
        )
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_peak_child, args=(dataset, topics, iters, queue))
    child.start()
    wall, cpu, peak_mb, baseline_mb = queue.get()
    child.join()
    records += [
        Record(
            "prereq",
            f"{dataset} K={topics}",
            "wall seconds per EM iteration",
            "s",
            wall,
            peer="target",
            peer_value=1.0,
            notes=f"target: <= 1 s per EM iteration; {env.machine(load=True)}; "
            "wall time includes other processes' load",
        ),
        Record(
            "prereq",
            f"{dataset} K={topics}",
            "CPU seconds per EM iteration",
            "s",
            cpu,
            peer="target",
            peer_value=1.0,
            notes="process CPU time, unaffected by other processes' load",
        ),
        Record(
            "prereq",
            f"{dataset} K={topics}",
            "peak RSS of a fit",
            "MB",
            peak_mb,
            peer="target",
            peer_value=1024.0,
            notes=f"fresh process; {baseline_mb:.0f} MB before fitting (data loaded)",
        ),
    ]
    report.print_table(records, title="Pairwise-Link-LDA speed and memory")
    if json_path:
        report.write_json(records, json_path)
    return records
