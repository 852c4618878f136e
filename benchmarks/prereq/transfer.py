"""Transfer to unseen concepts: PREREQ's hybrid, its ablations, the link-count forest and the identity
and all-positive baselines on concept-disjoint splits and the authors' folds, over several seeds
(mean and 95% interval over all folds of all seeds).

Usage: FRUGAL_DATA=../shared/data python benchmarks/prereq/transfer.py OUT.json [--datasets university,nptel]
       [--topics 20] [--em-iter 20] [--seeds 0,1,2] [--methods prereq-hybrid,prereq-topics,rf,identity,allpos]
"""

import argparse

from frugalml.prereq.bench.transfer import run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--datasets", default="university,nptel")
    parser.add_argument("--splits", default="disjoint,authors")
    parser.add_argument("--methods", default="prereq-hybrid,prereq-topics,rf,identity,allpos")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--topics", type=int, default=20)
    parser.add_argument("--em-iter", type=int, default=20)
    args = parser.parse_args()
    run(
        args.out,
        datasets=args.datasets.split(","),
        splits=args.splits.split(","),
        methods=args.methods.split(","),
        seeds=[int(s) for s in args.seeds.split(",")],
        topics=args.topics,
        em_iter=args.em_iter,
    )
