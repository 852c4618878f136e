"""Child process for the phase breakdown of a cold query from HTTP (``bench.remote.run_phases``).

Run as ``python -m frugalml.pacset.bench.phasechild URL ROW.npy SPAWNED``: it stamps the wall
clock after each phase (numpy is imported here, not at the top, so its import is a phase of its
own) and prints one JSON line.
"""

import json
import sys
import time


def phases(url: str, row_path: str, spawned: float) -> dict:
    """Ours with a timestamp after each phase (seconds since the parent spawned this process, by
    the wall clock): imports, the open (header, index, the blocks after them), each walk round."""
    marks = {"interpreter start": time.time() - spawned}
    import numpy as np

    x = np.load(row_path)
    marks["numpy"] = time.time() - spawned
    from frugalml.pacset import remote
    from frugalml.pacset.runtime import PackedForest

    marks["pacset imports"] = time.time() - spawned
    rounds: list[float] = []
    fetch = remote.HttpStore.fetch

    def timed(self, blocks):
        fetch(self, blocks)
        if not self._pending:
            rounds.append(time.time() - spawned)

    remote.HttpStore.fetch = timed
    with PackedForest.open(url) as model:
        marks["open: header, index, first blocks (HTTP client imported)"] = time.time() - spawned
        rounds.clear()  # the blocks kept from the header read are not a round
        model.predict(x)
        marks["predict done"] = time.time() - spawned
    return {"marks": marks, "rounds": rounds}


if __name__ == "__main__":
    print(json.dumps(phases(sys.argv[1], sys.argv[2], float(sys.argv[3]))))
