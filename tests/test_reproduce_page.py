"""`frugal reproduce`: the results page is complete, self-contained and opens in a real browser."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.common.report import Record, new_figure, save_plot, write_json
from frugalml.common.reproduction import Reproduction
from frugalml.reproduce import build, run

ROW = (
    "| faster than BLAS at 90% zeros | 3.1x vs numpy | [speed.json](maskedmm/speed.json) "
    "| `python benchmarks/maskedmm/x.py` | 2026-11-27, test CPU |"
)
INDEX = f"""# Results

## maskedmm

| claim | figure (ours vs peer) | file | command that regenerates it | date, machine |
|---|---|---|---|---|
{ROW}
"""


@pytest.fixture
def results(tmp_path) -> Path:
    root = tmp_path / "results"
    (root / "maskedmm").mkdir(parents=True)
    (root / "urerf").mkdir()
    (root / "pacset").mkdir()
    write_json(
        [Record("maskedmm", "1024^3, 90% zeros", "time", "s", 0.005, "numpy", 0.015)],
        root / "maskedmm/speed.json",
    )
    claim = Record(
        "urerf", "helix", "P@50", "", 0.86, "isomap", 0.5, higher_is_better=True, claim="urerf/helix",
        paper_statement="P@50 above Isomap at 10 noise dims", paper_value=0.8, paper_source="Fig. 3",
        verdict="better than the paper", command="frugal urerf sim --dataset helix",
    )  # fmt: skip
    write_json([claim], root / "urerf/noise.json")
    fig, ax = new_figure()
    ax.plot([0, 1], [1, 0])
    save_plot(fig, root / "urerf/noise.png")
    (root / "pacset/broken.json").write_text("{ not json")
    (root / "pacset/summary.json").write_text('{"rows": [1, 2]}')  # results of another shape
    (root / "pacset/damaged.json").write_text('{"version": 1, "records": [{"system": "x"}]}')
    (root / "README.md").write_text(INDEX)
    return root


def test_page_has_every_claim_plot_and_link(results, tmp_path):
    page = build(results, tmp_path / "report", ["maskedmm", "urerf", "pacset"])
    text = page.read_text()
    assert "faster than BLAS at 90% zeros" in text and "P@50 above Isomap at 10 noise dims" in text
    assert "better than the paper" in text
    assert re.search(r"2 figures: .*better than the paper</span> 1", text)  # the verdicts tallied
    assert text.count("data:image/png;base64,") == 1
    assert "is not valid JSON" in text  # the broken file is named in its section; the rest is written
    assert "damaged.json holds a record of the wrong shape" in text
    assert "summary.json" in text and "summary.json is not" not in text  # linked, not an error
    links = re.findall(r'href="([^"#]+)"', text)
    assert links and all((page.parent / link).is_file() for link in links), links
    assert "http" not in "".join(re.findall(r'src="([^"]+)"', text))  # nothing fetched from the network
    with pytest.raises(InvalidInputError, match="--force"):
        build(results, tmp_path / "report")
    assert build(results, tmp_path / "report", force=True).is_file()


def test_cli_errors_are_one_line(results, tmp_path):
    absent = str(tmp_path / "absent")
    for args in (
        ["--systems", "bogus"],
        ["--from", absent],
        ["--quick", "--full"],
        ["--from", absent, "--full"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "frugalml.cli", "reproduce", "-o", str(tmp_path / "out"), *args],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr


def test_page_opens_in_headless_chromium(results, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    driver_path = shutil.which("chromedriver")
    if driver_path is None or shutil.which("chromium") is None:
        pytest.skip(
            "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        )
    page = build(results, tmp_path / "report")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(page.as_uri())
        assert driver.title.startswith("frugalml")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);"
        )
        assert images and all(done and width > 0 for done, width in images), images
        assert driver.save_screenshot(str(tmp_path / "page.png"))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()


def _check(name, calls, *, fail=False, modes=("quick", "full"), stored=""):
    def run_check(mode, folder):
        calls.append((name, mode))
        print(f"measuring {name}")
        if fail:
            raise ValueError("the data set\nis missing")
        fig, ax = new_figure()
        ax.plot([0, 1], [0, 1])
        save_plot(fig, folder / f"{name}.png")
        return [
            Record(
                "urerf", f"{name}, {mode}", "P@50", "", 0.9, "isomap", 0.6, higher_is_better=True,
                claim=f"urerf/{name}", paper_statement=f"{name} holds", paper_value=0.8,
                paper_source="Fig. 3", verdict="reproduced",
            )
        ]  # fmt: skip

    return Reproduction(name, run_check, quick_seconds=1, modes=modes, stored=stored)


@pytest.fixture
def checks(monkeypatch, results):
    """Three systems with fake checks: urerf's run, maskedmm's is shown from stored results (a file
    without a date, dated by the results index), pacset's second check fails."""
    calls = []
    table = {
        "urerf": [_check("noise-figure", calls)],
        "maskedmm": [_check("gpu-only", calls, modes=(), stored="maskedmm/speed.json")],
        "pacset": [_check("cold-query", calls), _check("broken", calls, fail=True)],
    }
    stored = results / "maskedmm/speed.json"
    doc = json.loads(stored.read_text())
    del doc["environment"]["date"]
    stored.write_text(json.dumps(doc))
    monkeypatch.setattr("frugalml.reproduce.checks_of", lambda system: table[system])
    return calls


def test_quick_run_writes_every_check_and_labels_stored_ones(checks, results, tmp_path, capsys):
    page = run("quick", tmp_path / "report", ["urerf", "maskedmm", "pacset"], results=results, quiet=True)
    text = page.read_text()
    assert ("noise-figure", "quick") in checks and ("gpu-only", "quick") not in checks
    assert "noise-figure holds" in text and "cold-query holds" in text
    assert "speed.json: 1 records, measured on stored result, 2026-11-27, test CPU" in text
    assert "broken failed: ValueError: the data set is missing" in text  # one line, the rest written
    assert text.count("data:image/png;base64,") == 2
    links = re.findall(r'href="([^"#]+)"', text)
    assert all((page.parent / link).is_file() for link in links), links
    assert (tmp_path / "report/data/urerf/noise-figure.json").is_file()
    assert "measuring noise-figure" in (tmp_path / "report/data/urerf/noise-figure.log").read_text()
    assert "measuring" not in capsys.readouterr().out  # what checks print goes to their logs
    with pytest.raises(InvalidInputError, match="--resume"):
        run("quick", tmp_path / "report", ["urerf"], results=results)


def test_full_run_resumes_where_it_stopped(checks, results, tmp_path):
    out = tmp_path / "report"
    run("full", out, ["urerf", "pacset"], results=results, quiet=True)
    first = len(checks)
    run("full", out, ["urerf", "pacset"], results=results, quiet=True, resume=True)
    assert checks[first:] == [("broken", "full")]  # finished checks are kept, the failed one re-runs
    with pytest.raises(InvalidInputError, match="--full --resume"):
        run("quick", out, ["urerf"], results=results, resume=True)
    (out / "progress.json").write_text("{")
    with pytest.raises(InvalidInputError, match="damaged"):
        run("full", out, ["urerf"], results=results, resume=True)
    assert run("quick", out, ["urerf"], results=results, force=True, quiet=True).is_file()
