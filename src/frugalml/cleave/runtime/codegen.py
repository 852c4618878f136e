"""Compile ``cleave_runtime.proto`` into the committed ``*_pb2.py`` modules, or check they match.

``python -m frugalml.cleave.runtime.codegen`` rewrites them; ``--check`` exits 1 when they are stale.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC_ROOT = HERE.parents[2]
PROTO = HERE / "cleave_runtime.proto"
GENERATED = ("cleave_runtime_pb2.py", "cleave_runtime_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Run grpc_tools' protoc on the .proto, writing the Python modules below ``out_dir``."""
    from grpc_tools import protoc

    relative = PROTO.relative_to(SRC_ROOT)
    include = Path(protoc.__file__).resolve().parent / "_proto"
    code = protoc.main([
        "grpc_tools.protoc",
        f"-I{SRC_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(relative),
    ])
    if code != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {code})")
    return [out_dir / relative.parent / name for name in GENERATED]


def stale_modules() -> list[str]:
    """Names of the committed generated modules that differ from a fresh compile of the .proto."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        return [p.name for p in fresh if p.read_bytes() != (HERE / p.name).read_bytes()]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        stale = stale_modules()
        if stale:
            print(f"stale generated modules: {', '.join(stale)}; run python -m {__spec__.name}")
            return 1
        print("generated modules match the .proto")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            (HERE / path.name).write_bytes(path.read_bytes())
    print(f"wrote {', '.join(GENERATED)} next to {PROTO.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
