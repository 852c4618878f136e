"""`frugal reproduce`: the results page is complete, self-contained and opens in a real browser."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.common.report import Record, new_figure, save_plot, write_json
from frugalml.reproduce import build

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
    for args in (["--systems", "bogus"], ["--from", str(tmp_path / "absent")]):
        run = subprocess.run(
            [sys.executable, "-m", "frugalml.cli", "reproduce", "-o", str(tmp_path / "out"), *args],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr


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
