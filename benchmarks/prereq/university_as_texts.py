"""Write the University data set as a user's own course (texts, concepts, pairs) for ``eval --texts``.

Usage: FRUGAL_DATA=../shared/data python benchmarks/prereq/university_as_texts.py OUT_DIR
then the commands it prints (their JSON outputs are gathered in
benchmarks/results/prereq/own-texts-university.json).
"""

import sys

from frugalml.prereq.bench.as_texts import write_university_as_texts

if __name__ == "__main__":
    paths = write_university_as_texts(sys.argv[1] if len(sys.argv) > 1 else "university-as-texts")
    for split in ("random", "disjoint"):
        print(
            f"frugal prereq eval --texts {paths['texts']} --links {paths['links']} "
            f"--concepts {paths['concepts']} --pairs {paths['pairs']} --methods prereq,rf "
            f"--topics 20 --em-iter 20 --split {split} --test-share 0.4 -q --json {split}.json"
        )
