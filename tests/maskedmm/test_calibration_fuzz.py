"""The calibration cache is untrusted input: damaged, edited, foreign or hostile files are refused
with a one-line CorruptFileError by ``read_cache`` and ignored with one warning by the planner."""

import json
import random
import warnings

import pytest

from frugalml.common.errors import CorruptFileError
from frugalml.maskedmm import planner
from frugalml.maskedmm.planner import Calibration, CalibrationWarning

HOSTILE = [float("nan"), float("inf"), -1.0, 1e300, "1e-9", None, [], {}, True, 10**400, {"1": 2}, 0, 5e-12]


def _valid(tmp_path):
    cal = Calibration(measured=True, dense_per_mac=2e-11, call_overhead=9e-6)
    path = tmp_path / "calibration.json"
    planner.write_cache(path, cal)
    return path, cal


def _rewrite(path, mutate, *, reseal=True):
    doc = json.loads(path.read_text())
    mutate(doc)
    if reseal and isinstance(doc.get("fingerprint"), dict):
        doc["checksum"] = planner._checksum(doc["fingerprint"], doc.get("calibration"))
    path.write_text(json.dumps(doc))


def _check_sound(cal):
    for name in ("dense_per_mac", "map_per_entry", "call_overhead", "model_error", "masked_parallel_gain"):
        value = getattr(cal, name)
        assert isinstance(value, float) and value == value and abs(value) != float("inf") and value >= 0
    assert set(cal.per_call) == set(cal.per_iteration) == set(planner.ROW_BLOCKS)


def test_a_written_cache_reads_back_and_loads(tmp_path, fresh_cache):
    path, cal = _valid(tmp_path)
    fingerprint, back = planner.read_cache(path)
    assert back == cal and fingerprint == planner.fingerprint()
    planner.use_calibration(cal)
    planner._loaded = None
    assert planner.calibration() == cal


def test_a_corrupt_cache_is_ignored_with_one_warning(fresh_cache, monkeypatch):
    planner.cache_path().parent.mkdir(parents=True)
    planner.cache_path().write_text("{not json")
    with pytest.warns(CalibrationWarning, match="not valid JSON.*frugal maskedmm calibrate"):
        assert planner.calibration() == Calibration()
    planner.calibration()  # loaded once: no second warning (pytest.warns above caught the only one)


def test_a_foreign_cache_is_ignored_and_names_what_differs(tmp_path, fresh_cache, monkeypatch):
    planner.use_calibration(Calibration(measured=True))
    _rewrite(planner.cache_path(), lambda doc: doc["fingerprint"].update(cpu="Another CPU"))
    monkeypatch.setattr(planner, "_loaded", None)
    with pytest.warns(CalibrationWarning, match="another cpu"):
        assert not planner.calibration().measured


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(version=1), "layout version 1"),
        (lambda d: d.update(format="other"), "not a maskedmm calibration file"),
        (lambda d: d.update(comment="hello"), "has fields"),
        (lambda d: d["calibration"].update(dense_per_mac=-1.0), "dense_per_mac = -1.0 lies outside"),
        (lambda d: d["calibration"].update(model_error=float("nan")), "model_error"),
        (lambda d: d["calibration"]["per_call"].pop("2"), "one cost per row block"),
        (lambda d: d["calibration"].update(measured=1), "not a boolean"),
        (lambda d: d["calibration"].update(extra=1.0), "calibration fields"),
        (lambda d: d["calibration"].update(call_overhead="0.1"), "str, not a number"),
    ],
)
def test_each_check_names_the_fault_in_one_line(tmp_path, mutate, message):
    path, _ = _valid(tmp_path)
    _rewrite(path, mutate)
    with pytest.raises(CorruptFileError, match=message) as info:
        planner.read_cache(path)
    assert "\n" not in str(info.value)


def test_an_edited_value_fails_the_checksum_and_huge_or_deep_files_are_refused(tmp_path):
    path, _ = _valid(tmp_path)
    _rewrite(path, lambda d: d["calibration"].update(dense_per_mac=1e-12), reseal=False)
    with pytest.raises(CorruptFileError, match="checksum"):
        planner.read_cache(path)
    path.write_text(" " * (planner.MAX_CACHE_BYTES + 1))
    with pytest.raises(CorruptFileError, match="larger than"):
        planner.read_cache(path)
    path.write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(CorruptFileError):
        planner.read_cache(path)


def _fuzz_case(rng: random.Random, path, good: bytes) -> None:
    """Damage the good file one of several ways: bytes flipped, cut, a value swapped (resealed so
    the range checks, not the checksum, must catch it), a key dropped or added."""
    kind = rng.randrange(4)
    if kind == 0:
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data))
    elif kind == 1:
        path.write_bytes(good[: rng.randrange(len(good))])
    else:
        path.write_bytes(good)

        def mutate(doc):
            target = doc["calibration"] if rng.random() < 0.8 else doc
            if rng.random() < 0.2 and isinstance(target.get("per_call"), dict):
                target = target["per_call"]
            key = rng.choice(sorted(target))
            if kind == 2:
                target[key] = rng.choice(HOSTILE)
            elif rng.random() < 0.5:
                target.pop(key)
            else:
                target[f"{key}_"] = 1.0

        _rewrite(path, mutate, reseal=rng.random() < 0.8)


def _fuzz(cases: int, seed: int, tmp_path, monkeypatch) -> None:
    path, _ = _valid(tmp_path)
    good = path.read_bytes()
    rng = random.Random(seed)
    for _ in range(cases):
        _fuzz_case(rng, path, good)
        try:
            _, cal = planner.read_cache(path)
        except CorruptFileError as exc:
            assert "\n" not in str(exc)
        else:
            _check_sound(cal)
        monkeypatch.setattr(planner, "cache_path", lambda: path)
        monkeypatch.setattr(planner, "_loaded", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CalibrationWarning)
            _check_sound(planner.calibration())


def test_fuzz_calibration_cache_seeded_subset(tmp_path, monkeypatch):
    _fuzz(400, 0, tmp_path, monkeypatch)


@pytest.mark.slow
def test_fuzz_calibration_cache_full(tmp_path, monkeypatch):
    _fuzz(20_000, 1, tmp_path, monkeypatch)
