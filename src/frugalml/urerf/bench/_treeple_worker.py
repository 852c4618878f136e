"""A treeple worker run by another Python (one whose scikit-learn matches treeple's wheel).

Reads one JSON request per line on stdin ({"X": .npy path, "out": .npy path, "n_trees", "seed",
"oblique"}), fits treeple's unsupervised forest, writes ``apply(X)`` leaves, answers one JSON line.
It imports only numpy and treeple, so it runs outside frugalml's environment.
"""

import json
import sys
import time


def main() -> None:
    import numpy as np
    import sklearn
    import treeple
    from treeple import UnsupervisedObliqueRandomForest, UnsupervisedRandomForest

    versions = {
        "treeple": treeple.__version__,
        "sklearn": sklearn.__version__,
        "python": sys.version.split()[0],
    }
    print(json.dumps({"ready": versions}), flush=True)
    for line in sys.stdin:
        try:
            request = json.loads(line)
            X = np.load(request["X"])
            model = UnsupervisedObliqueRandomForest if request["oblique"] else UnsupervisedRandomForest
            start = time.perf_counter()
            forest = model(
                n_estimators=request["n_trees"], criterion="fastbic", random_state=request["seed"], n_jobs=-1
            ).fit(X)
            np.save(request["out"], forest.apply(X))
            print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
        except Exception as exc:  # reported to the caller, which raises PeerUnavailableError
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)


if __name__ == "__main__":
    main()
