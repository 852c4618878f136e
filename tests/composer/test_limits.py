"""Every size a composer command takes is bounded: a clear one-line error (exit 2) before allocating."""

from pathlib import Path

import pytest

from frugalml.cli import main
from frugalml.common.errors import InvalidInputError
from frugalml.common.validate import check_memory
from frugalml.composer import limits
from frugalml.composer.proxies import TrainConfig

TABLE = ["src/frugalml/composer/tabular_AM_6.json"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["search", "--layers", "1000"], "layers must be between 1 and 64"),
        (["search", "--width", "10000000"], "width must be between 1 and 16,384"),
        (["search", "--width", "16000", "--layers", "64"], "GiB are available; lower --width or --layers"),
        (["search", "--workers", "100000"], "workers must be between 1 and"),
        (["search", "--executor", "ray", "--workers", "100000"], "workers must be between 1 and 4,096"),
        (["search", "--threads", "100000"], "threads must be between 1 and"),
        (["search", "--threads", "0"], "threads must be between 1 and"),
        (["search", "--seed", "-1"], "seed must be between 0 and"),
        (["search", "--steps", "1000000000"], "steps must be between 1 and 10,000,000"),
        (["extrapolate", "--arch", "AM", "--layers", "1000000000"], "more than 10,000"),
        (["extrapolate", "--arch", "AM", "--params", "100000000000000"], "more than 10,000"),
        (["train", "AM", "--batch-size", "100000000"], "batch_size must be between 1 and 65,536"),
        (["train", "AM", "--batch-size", "60000", "--seq-len", "4096"], "lower --batch-size, --seq-len"),
        (["train", "AM", "--seq-len", "1"], "seq_len must be between 2 and"),
        (["train", "AM", "--lr", "nan"], "lr must be a finite number above 0"),
        (["train", "AM", "--threads", "0"], "threads must be between 1 and"),
        (["train", "AM", "--generate", "100000000"], "generate must be between 0 and 1,000,000"),
        (["train", "AM", "--heads", "3"], "not divisible by heads 3"),
        (["compare", "--seeds", "100000000"], "seeds must be between 1 and 100,000"),
        (["compare", "--first-seed", "-5"], "first_seed must be between 0"),
        (["compare", "--initial", "100000", "--seeds", "1"], "initial must be between 1 and the 64"),
        (["pareto", *TABLE, "--width", "100000"], "width must be between 1 and 16,384"),
    ],
)
def test_sizes_beyond_the_bounds_exit_2_in_one_line(args, message, capsys, tmp_path, monkeypatch):
    if args[0] == "pareto":
        args = [args[0], str(Path.cwd() / args[1]), *args[2:]]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["composer", *args, *(["-q"] if args[0] in ("search", "train", "compare") else [])])
    out = capsys.readouterr()
    assert exit_info.value.code == 2
    assert message in out.err and len(out.err.strip().splitlines()) == 1 and not out.out
    assert not (tmp_path / "composer-cache.sqlite").exists()  # refused before the cache was opened


def test_training_config_bounds_and_finite_rates():
    for kwargs in ({"steps": 10**9}, {"batch_size": 10**6}, {"learning_rates": (float("nan"),)}):
        with pytest.raises(InvalidInputError):
            TrainConfig(**kwargs)
    with pytest.raises(InvalidInputError, match="weight decays"):
        TrainConfig(weight_decays=(float("inf"),))


def test_memory_estimate_grows_with_the_sizes():
    small = limits.training_bytes(
        params=10**5, width=64, layers=6, attention_layers=3, heads=4, batch=16, seq_len=128
    )
    longer = limits.training_bytes(
        params=10**5, width=64, layers=6, attention_layers=3, heads=4, batch=16, seq_len=1024
    )
    assert longer > 8 * small
    with pytest.raises(InvalidInputError, match="GiB are available"):
        check_memory(2**62, "a huge model", "make it smaller")
