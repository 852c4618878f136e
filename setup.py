"""Build hook for the C extensions (maskedmm's kernels); everything else lives in pyproject.toml."""

import importlib.util
import sys
from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).parent
MASKEDMM = ROOT / "src" / "frugalml" / "maskedmm"


def generate_maskedmm_microkernels() -> None:
    """Run maskedmm's code generator (the pattern-specialised micro-kernel table) before compiling."""
    spec = importlib.util.spec_from_file_location("codegen_kernels", MASKEDMM / "codegen_kernels.py")
    codegen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = codegen  # dataclasses look their module up here
    spec.loader.exec_module(codegen)
    codegen.write()


def c_extensions():
    """Return the C extensions whose sources are present (maskedmm adds its kernels here)."""
    if not (MASKEDMM / "_kernels.c").exists():
        return []
    generate_maskedmm_microkernels()
    return [
        Extension(
            "frugalml.maskedmm._kernels",
            sources=["src/frugalml/maskedmm/_kernels.c"],
            depends=["src/frugalml/maskedmm/_microkernels.h"],
            extra_compile_args=["-O3", "-fopenmp", "-std=gnu11", "-fno-strict-aliasing"],
            extra_link_args=["-fopenmp"],
            libraries=["gomp"],
        )
    ]


setup(ext_modules=c_extensions())
