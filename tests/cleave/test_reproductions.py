"""cleave's checks for ``frugal reproduce``: the stored-only checks and the claim fields."""

import pytest

from frugalml.cleave.bench.reproduce import attach_claims, reproductions, traffic_claim
from frugalml.common.errors import FrugalError
from frugalml.common.report import VERDICTS, Record


def test_stored_only_checks_say_where_their_figures_are(tmp_path):
    stored = {c.name: c for c in reproductions() if not c.modes}
    assert sorted(stored) == ["des-speed", "validate"]
    for name, check in stored.items():
        with pytest.raises(FrugalError, match=f"{name}.json"):
            check.run("full", tmp_path)


FLAT = "devices until per-batch time stops falling"


def _rec(metric, ours, peer=None, peer_value=None, higher=False):
    return Record("cleave", "w", metric, "s", ours, peer, peer_value, higher_is_better=higher)


def test_claims_carry_the_papers_number_in_the_records_metric():
    records = attach_claims(
        [
            _rec("per-batch time (DES / task graphs)", 100.0, "best edge baseline (swarm: {})", 800.0),
            _rec("Cleave's floor: uplink", 50.0),
            _rec(FLAT, 4096, "asteroid (closed form)", 512, True),
            _rec(FLAT, 4096, "swarm (best at 1024, closed form)", 1024, True),
            _rec("recovery: failure until the lost work is redone", 5.0, "asteroid", 900.0),
            _rec("per-batch time (analytic)", 7000.0, "cloud reference (5 s)", 5.0),
        ]
    )
    by_claim = {r.claim: r for r in records if r.claim}
    assert set(by_claim) == {
        "cleave/speedup-vs-edge",
        "cleave/device-scaling",
        "cleave/recovery",
        "cleave/cloud-comparable",
    }
    assert by_claim["cleave/speedup-vs-edge"].paper_value == 200.0
    assert by_claim["cleave/speedup-vs-edge"].verdict == "better than the paper"
    assert by_claim["cleave/device-scaling"].peer_value == 1024  # the best-scaling baseline
    assert by_claim["cleave/device-scaling"].verdict == "not reproduced"
    assert by_claim["cleave/recovery"].verdict == "better than the paper"  # 180x
    assert by_claim["cleave/cloud-comparable"].verdict == "not reproduced"
    for r in by_claim.values():
        assert r.verdict in VERDICTS and r.reason and r.paper_statement and r.paper_source
        assert "\n" not in r.reason


def test_traffic_claim_reads_the_wire_bytes_per_worker():
    records = [
        Record(
            "cleave", f"tiny-gpt, {n} local workers, per worker per training step", "wire bytes down", "B", b
        )
        for n, b in ((2, 3.0e6), (8, 1.5e6))
    ]
    claim = traffic_claim(records)
    assert claim is not None and claim.claim == "cleave/traffic-falls"
    assert claim.ours == pytest.approx(0.5) and claim.verdict == "reproduced"
    assert "8 workers / at 2" in claim.metric


def test_the_regime_map_checks_the_speed_up_and_where_only_cleave_runs():
    from frugalml.cleave.bench.reproduce import map_records
    from frugalml.cleave.regimes import Cell

    cells = [
        Cell("opt-13b", 32, 256, "mixed", 10.0, 100.0, "swarm", 50.0, 0.5, "downlink"),
        Cell("opt-13b", 32, 64, "phones", 10.0, 100.0, "swarm", float("inf"), float("inf"), "downlink"),
    ]
    speed, alone = map_records(cells, "test")
    assert (
        speed.claim == "cleave/speedup-across-regimes"
        and speed.ours == 0.5
        and speed.verdict == "not reproduced"
    )
    assert (
        alone.claim == "cleave/runs-where-baselines-cannot"
        and alone.ours == 1
        and alone.verdict == "reproduced"
    )
