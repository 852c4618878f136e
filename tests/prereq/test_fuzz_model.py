"""Fuzzing PREREQ model files: mutated copies of valid ``.prereq`` files (bytes flipped, truncated,
extended, spliced; metadata fields and the array index edited; payload bytes taken from another
model; checksums recomputed as an attacker would) end in a one-line FrugalError or in exactly the
probabilities a slow, independent reference (:mod:`tests.prereq.model_reference`) computes from the
same bytes; never a crash, a hang, another exception or a refusal of bytes the reference reads."""

import struct

import numpy as np
import pytest

from frugalml.prereq.model import PrereqModel
from tests.fuzz import check_cases, container_metadata, mutations, reseal_container, with_metadata
from tests.prereq.model_reference import predict_for_fuzz, reference_predict, warm_up

HOSTILE = [-1, 0, 1, 2, 3, 6, 7, 8, 255, 2**31, 2**63, 10**30, 1.5, -0.5, 1e308, True, None, "6", [], {}]
SIAMESE = ["hidden", "members", "head", "inputs", "dropout", "threads", "steps", "val_fraction", "bogus"]
PLDA = ["n_topics", "alpha", "max_em_iter", "unlinked_weight", "bogus"]
DTYPES = ["<f4", "<f8", "<f2", "<i8", "<i4", "|u1", "|b1", "<c8", "<U2", "|V4", "|O", ">f4", 3]
TIMEOUT = 20.0  # seconds per case; loading and predicting takes milliseconds


def _valid(tmp_path, planted, fitted, seed: int, head: str = "rich", **siamese) -> bytes:
    corpus = planted.dataset.corpus
    params = {"steps": 15, "hidden": 8, "members": 2, "threads": 1, **siamese}
    model = PrereqModel(6, method="prereq", head=head, seed=seed, siamese_params=params)
    model.fit(corpus, planted.dataset.pairs, plda=fitted)
    path = tmp_path / f"m{seed}{head}.prereq"
    model.save(path)
    return path.read_bytes()


def _valid_hybrid(tmp_path, planted, fitted) -> bytes:
    """A prereq-hybrid model (a small forest, so that the reference's tree walk stays quick)."""
    model = PrereqModel(6, trees=4).fit(planted.dataset.corpus, planted.dataset.pairs, plda=fitted)
    path = tmp_path / "hybrid.prereq"
    model.save(path)
    return path.read_bytes()


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _edit_meta(meta: dict, rng) -> str:
    """One hostile edit of the model's own metadata (parameters, concepts, names)."""
    action = _pick(rng, ["siamese", "plda", "concept", "concepts", "top", "aliases", "method"])
    fields = ("siamese_params", "plda_params", "concepts")
    if meta.get("method") == "prereq-hybrid":
        action = "parts" if action == "siamese" else action
        fields = ("plda_params", "concepts")
    if not all(isinstance(meta.get(f), dict) and meta.get(f) for f in fields):  # an earlier edit
        action = "top"
    if action == "method":
        meta["method"] = _pick(rng, ["prereq", "prereq-paper", "prereq-hybrid", "rf", None, 3])
        return f"method -> {meta['method']!r}"
    if action == "parts":
        meta["parts"] = _pick(rng, [["links"], ["topics"], ["links", "topics"], [], "topics", None, ["x"]])
        return f"parts -> {meta['parts']!r}"
    if action == "siamese":
        key = _pick(rng, SIAMESE)
        meta["siamese_params"][key] = _pick(rng, [*HOSTILE, "bilinear", "abs", "log", "diff"])
        return f"siamese {key}={meta['siamese_params'][key]!r}"
    if action == "plda":
        key = _pick(rng, PLDA)
        meta["plda_params"][key] = _pick(rng, HOSTILE)
        return f"plda {key}"
    if action == "concept":
        name = _pick(rng, sorted(meta["concepts"]))
        meta["concepts"][name] = _pick(rng, [*HOSTILE, 5, 71, 72])
        return f"concept {name!r} -> {meta['concepts'][name]!r}"
    if action == "concepts":
        meta["concepts"] = _pick(rng, [[], {}, "x", {"a": 0}, None, dict(list(meta["concepts"].items())[:1])])
        return "concepts replaced"
    if action == "top":
        key = _pick(rng, ["n_topics", "head", "seed"])
        meta[key] = _pick(rng, [*HOSTILE, "abs", "rich"])
        return f"{key} -> {meta[key]!r}"
    meta["concept_aliases"] = _pick(rng, [{"a": "bc"}, {"a": [1]}, [], {"a": ["b"]}, None])
    meta["unseen_concepts"] = _pick(rng, [[], ["x"], "x", [3], None])
    return "aliases"


def _edit_index(meta: dict, rng) -> str:
    """One hostile edit of the array index: a shape, a dtype, a name, an entry dropped or doubled."""
    entries = meta["arrays"]
    entry = _pick(rng, entries)
    action = _pick(rng, ["shape", "shape", "dtype", "rename", "swap", "drop", "dup"])
    if action == "shape":
        shape = list(entry["shape"])
        if shape and rng.random() < 0.7:
            shape[int(rng.integers(len(shape)))] = _pick(rng, [*HOSTILE[:10], shape[0] + 1, shape[-1] - 1])
        else:
            shape = _pick(rng, [[], [0], [*shape, 1], shape[:-1], [1] * 12, shape[::-1]])
        entry["shape"] = shape
    elif action == "dtype":
        entry["dtype"] = _pick(rng, DTYPES)
    elif action == "rename":
        extra = ["siamese.net2.head.bias", "plda.x", "forest.x", "stats.links"]
        entry["name"] = _pick(rng, [e["name"] for e in entries] + extra)
    elif action == "swap":
        other = _pick(rng, entries)
        entry["name"], other["name"] = other["name"], entry["name"]
    elif action == "drop":
        entries.remove(entry)
    else:
        entries.append(dict(entry))
    return f"index {action} of {entry.get('name')!r}"


def _structured(data: bytes, count: int, seed: int):
    """Copies whose metadata or array index carry one or two hostile edits (checksums valid)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        meta = container_metadata(data)
        what = [_edit_meta(meta, rng) if rng.random() < 0.5 else _edit_index(meta, rng)]
        if rng.random() < 0.3:
            what.append(_edit_meta(meta, rng) if rng.random() < 0.5 else _edit_index(meta, rng))
        yield "; ".join(what), with_metadata(data, meta)


def _hybrid_values(data: bytes, count: int, seed: int):
    """Copies of a prereq-hybrid model with one number of its forest or corpus statistics replaced
    (a child, a feature, a document, a pointer, a threshold, a share; checksums valid)."""
    rng = np.random.default_rng(seed)
    meta = container_metadata(data)
    start = struct.unpack_from("<8sIIQQ32s", data)[3]  # the payload's offset in the container
    entries = [e for e in meta["arrays"] if e["name"].split(".")[0] in ("forest", "stats", "hybrid")]
    entries = [e for e in entries if e["nbytes"]]
    for _ in range(count):
        entry = _pick(rng, entries)
        dtype = np.dtype(entry["dtype"])
        at = start + entry["offset"]
        values = np.frombuffer(data[at : at + entry["nbytes"]], dtype=dtype).copy()
        i = int(rng.integers(len(values)))
        if dtype.kind == "f":
            new = _pick(
                rng, [-0.5, 0.0, 0.5, 1.0, 1.5, -1e30, 1e30, float(values[int(rng.integers(len(values)))])]
            )
        else:
            options = [-2, -1, 0, 1, 2, 3, 40, 10**6, 2**62, -(2**63), int(values[i]) + 1, int(values[i]) - 1]
            new = _pick(rng, [*options, int(values[int(rng.integers(len(values)))])])
        values[i] = new
        raw = values.tobytes()
        yield f"{entry['name']}[{i}] = {new!r}", reseal_container(data[:at] + raw + data[at + len(raw) :])


def _swaps(data: bytes, other: bytes, count: int, seed: int):
    """Copies with a run of payload bytes taken from another model of the same layout (resealed)."""
    rng = np.random.default_rng(seed)
    assert len(data) == len(other)
    for _ in range(count):
        at, size = int(rng.integers(0, len(data))), int(rng.integers(1, 512))
        yield (
            f"swap {size} bytes at {at}",
            reseal_container(data[:at] + other[at : at + size] + data[at + size :]),
        )


def _same(answer, expected) -> bool:
    names, threshold, probs = answer
    ref_names, ref_threshold, ref_probs = expected
    return (
        names == ref_names
        and np.isclose(threshold, ref_threshold, rtol=1e-6, atol=1e-7)
        and np.allclose(probs, ref_probs, rtol=1e-4, atol=1e-5, equal_nan=True)
    )


def _check(cases) -> dict[str, int]:
    return check_cases(
        cases, predict_for_fuzz, reference_predict, timeout=TIMEOUT, warm_up=warm_up, same=_same
    )


@pytest.fixture(scope="module")
def models(planted, fitted, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    return (
        _valid(tmp, planted, fitted, 0),
        _valid(tmp, planted, fitted, 1),
        _valid(tmp, planted, fitted, 2, head="bilinear", members=1, inputs="log"),
        _valid_hybrid(tmp, planted, fitted),
    )


def _cases(models, mutated: int, edits: int, swaps: int, seed: int):
    rich, other, bilinear, hybrid = models
    return [
        ("valid", rich),
        ("valid bilinear", bilinear),
        ("valid hybrid", hybrid),
        *mutations(rich, mutated, seed=seed, reseal=reseal_container),
        *mutations(bilinear, mutated // 4, seed=seed + 3, reseal=reseal_container),
        *mutations(hybrid, mutated // 2, seed=seed + 5, reseal=reseal_container),
        *_structured(rich, edits, seed=seed + 1),
        *_structured(bilinear, edits // 4, seed=seed + 4),
        *_structured(hybrid, edits // 2, seed=seed + 6),
        *_hybrid_values(hybrid, edits // 4, seed=seed + 7),
        *_swaps(rich, other, swaps, seed=seed + 2),
    ]


def test_fuzz_reference_agrees_with_the_loader_on_valid_files(models):
    for data in models:
        expected = reference_predict(data)
        assert expected is not None and len(expected[2]) == 30
        assert _same(predict_for_fuzz(data), expected)


def test_fuzz_model_files_seeded_subset(models):
    counts = _check(_cases(models, mutated=60, edits=80, swaps=20, seed=1))
    assert counts["error"] > 50 and counts["answer"] > 10  # both outcomes exercised


@pytest.mark.slow
def test_fuzz_model_files_full(models):
    counts = _check(_cases(models, mutated=800, edits=900, swaps=200, seed=101))
    assert counts["error"] + counts["answer"] == 3 + 800 + 200 + 400 + 900 + 225 + 450 + 225 + 200
