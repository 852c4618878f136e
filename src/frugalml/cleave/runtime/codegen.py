"""Compile ``cleave_runtime.proto`` into the committed ``*_pb2.py`` modules, or check they match it.

``python -m frugalml.cleave.runtime.codegen`` rewrites them; ``--check`` exits 1 when they are stale.
The check compares the protocol itself (the compiled file descriptor and the RPC paths), so it
does not depend on which grpcio-tools version generated the committed text.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC_ROOT = HERE.parents[2]
PROTO = HERE / "cleave_runtime.proto"
GENERATED = ("cleave_runtime_pb2.py", "cleave_runtime_pb2_grpc.py")


def _protoc(*outputs: str) -> None:
    from grpc_tools import protoc

    include = Path(protoc.__file__).resolve().parent / "_proto"
    code = protoc.main(
        ["grpc_tools.protoc", f"-I{SRC_ROOT}", f"-I{include}", *outputs, str(PROTO.relative_to(SRC_ROOT))]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {code})")


def generate(out_dir: Path) -> list[Path]:
    """Write the Python modules for the .proto below ``out_dir``; returns their paths."""
    _protoc(f"--python_out={out_dir}", f"--grpc_python_out={out_dir}")
    return [out_dir / PROTO.relative_to(SRC_ROOT).parent / name for name in GENERATED]


def stale_modules() -> list[str]:
    """Names of the committed generated modules that no longer describe the .proto."""
    from google.protobuf import descriptor_pb2

    from frugalml.cleave.runtime import cleave_runtime_pb2

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        _protoc(f"--descriptor_set_out={out}")
        fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    _drop_json_names(fresh.message_type)  # protoc adds them; generated modules leave them out
    committed = descriptor_pb2.FileDescriptorProto.FromString(cleave_runtime_pb2.DESCRIPTOR.serialized_pb)
    stale = []
    if committed.SerializeToString(deterministic=True) != fresh.SerializeToString(deterministic=True):
        stale.append(GENERATED[0])
    stubs = (HERE / GENERATED[1]).read_text()
    paths = [f"/{fresh.package}.{s.name}/{m.name}" for s in fresh.service for m in s.method]
    if not all(f"'{path}'" in stubs for path in paths):
        stale.append(GENERATED[1])
    return stale


def _drop_json_names(messages) -> None:
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _drop_json_names(message.nested_type)


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
