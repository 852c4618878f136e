"""Transformer shape specs: built-in OPT and Llama sizes, or any config read from YAML / JSON.

Only shapes matter to the planner: hidden size, layers, heads (and key/value heads), FFN size,
vocabulary, and whether the FFN is gated (SwiGLU: two up-projections).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from frugalml.common.errors import DataNotFoundError, InvalidInputError


@dataclass(frozen=True)
class ModelSpec:
    """Shapes of a decoder-only transformer.

    Parameters
    ----------
    name : str
        How reports call it.
    hidden, layers, heads, ffn, vocab : int
        Model width, depth, attention heads, FFN inner size, vocabulary size.
    kv_heads : int, optional
        Key/value heads (grouped-query attention); defaults to ``heads``.
    gated_ffn : bool
        SwiGLU-style FFN with gate and up projections (Llama); plain two-matrix FFN otherwise (OPT).
    """

    name: str
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    kv_heads: int | None = None
    gated_ffn: bool = False

    def __post_init__(self) -> None:
        for field in ("hidden", "layers", "heads", "ffn", "vocab"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInputError(
                    f"model {self.name!r}: field {field!r} must be a positive integer, got {value!r}"
                )
        if self.kv_heads is None:
            object.__setattr__(self, "kv_heads", self.heads)
        if not isinstance(self.kv_heads, int) or self.kv_heads < 1 or self.heads % self.kv_heads:
            raise InvalidInputError(
                f"model {self.name!r}: field 'kv_heads' ({self.kv_heads}) must be a "
                f"positive divisor of 'heads' ({self.heads})"
            )
        if self.hidden % self.heads:
            raise InvalidInputError(
                f"model {self.name!r}: field 'hidden' ({self.hidden}) must be "
                f"divisible by 'heads' ({self.heads})"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        kv_heads = self.kv_heads if self.kv_heads is not None else self.heads  # set in __post_init__
        return kv_heads * self.head_dim

    @property
    def layer_params(self) -> int:
        """Weights of one transformer layer (attention and FFN matrices; norms are negligible)."""
        attention = self.hidden * (self.hidden + 2 * self.kv_dim) + self.hidden * self.hidden
        ffn = (3 if self.gated_ffn else 2) * self.hidden * self.ffn
        return attention + ffn

    @property
    def params(self) -> int:
        """All weights: layers plus the embedding (tied with the output head)."""
        return self.layers * self.layer_params + self.vocab * self.hidden

    def to_dict(self) -> dict:
        return asdict(self)


BUILTIN: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        # OPT (Zhang et al. 2022, Table 1 / the facebook/opt-* config.json files).
        ModelSpec("opt-1.3b", hidden=2048, layers=24, heads=32, ffn=8192, vocab=50272),
        ModelSpec("opt-6.7b", hidden=4096, layers=32, heads=32, ffn=16384, vocab=50272),
        ModelSpec("opt-13b", hidden=5120, layers=40, heads=40, ffn=20480, vocab=50272),
        ModelSpec("opt-30b", hidden=7168, layers=48, heads=56, ffn=28672, vocab=50272),
        # Llama 3.2 1B / 3B and Llama 2 7B / 13B (the meta-llama config.json files).
        ModelSpec(
            "llama-1b", hidden=2048, layers=16, heads=32, ffn=8192, vocab=128256, kv_heads=8, gated_ffn=True
        ),
        ModelSpec(
            "llama-3b", hidden=3072, layers=28, heads=24, ffn=8192, vocab=128256, kv_heads=8, gated_ffn=True
        ),
        ModelSpec("llama-7b", hidden=4096, layers=32, heads=32, ffn=11008, vocab=32000, gated_ffn=True),
        ModelSpec("llama-13b", hidden=5120, layers=40, heads=40, ffn=13824, vocab=32000, gated_ffn=True),
        # The model the networked runtime trains (frugal cleave serve): runtime.model.GPTConfig.
        ModelSpec("tiny-gpt", hidden=64, layers=2, heads=2, ffn=256, vocab=64),
    )
}

# Models the networked runtime can train: name -> (sequence length, element types it trains in).
RUNTIME_MODELS: dict[str, tuple[int, tuple[str, ...]]] = {"tiny-gpt": (32, ("float32", "float64"))}
DTYPE_BYTES = {"fp16": 2, "bf16": 2, "float16": 2, "float32": 4, "float64": 8}


def default_dtype(model: str) -> str:
    """The element type a model is planned in by default: the runtime's for a runtime model, else fp16."""
    runtime = RUNTIME_MODELS.get(model.lower())
    return runtime[1][0] if runtime else "fp16"


# Our field names and the Hugging Face config.json names that mean the same thing.
_ALIASES = {
    "hidden": ("hidden", "hidden_size", "d_model", "n_embd"),
    "layers": ("layers", "num_hidden_layers", "n_layer", "num_layers"),
    "heads": ("heads", "num_attention_heads", "n_head"),
    "ffn": ("ffn", "intermediate_size", "ffn_dim", "n_inner"),
    "vocab": ("vocab", "vocab_size"),
    "kv_heads": ("kv_heads", "num_key_value_heads"),
}


def spec_from_dict(config: dict, name: str = "custom") -> ModelSpec:
    """Build a spec from our field names or a Hugging Face ``config.json`` dictionary.

    Raises
    ------
    InvalidInputError
        A required field is missing or a shape is inconsistent; the message names the field.
    """
    if not isinstance(config, dict):
        raise InvalidInputError(
            f"model config {name!r} must be a mapping of fields, got {type(config).__name__}"
        )
    values: dict = {"name": str(config.get("name", name))}
    for field, aliases in _ALIASES.items():
        found = [a for a in aliases if a in config]
        if found:
            values[field] = config[found[0]]
        elif field != "kv_heads":
            raise InvalidInputError(
                f"model config {name!r} lacks field {field!r} (also accepted: {', '.join(aliases[1:])})"
            )
    gated = config.get("gated_ffn")
    if gated is None:
        gated = (
            str(config.get("hidden_act", "")).lower() in ("silu", "swiglu")
            or "llama" in str(config.get("model_type", "")).lower()
        )
    values["gated_ffn"] = bool(gated)
    return ModelSpec(**values)


def load_model(name_or_path: str | Path) -> ModelSpec:
    """A built-in spec by name (``opt-13b``, ``llama-7b``...) or a spec read from a YAML/JSON file.

    Raises
    ------
    InvalidInputError
        Unknown name, unreadable file, or a config with missing/inconsistent fields.
    DataNotFoundError
        The path does not exist.
    """
    key = str(name_or_path).lower()
    if key in BUILTIN:
        return BUILTIN[key]
    path = Path(name_or_path)
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise InvalidInputError(
            f"unknown model {str(name_or_path)!r}; use one of "
            f"{', '.join(BUILTIN)} or a .yaml/.json config file"
        )
    if not path.exists():
        raise DataNotFoundError(f"model config {path} does not exist; check the path")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            config = json.loads(text)
        else:
            import yaml

            config = yaml.safe_load(text)
    except Exception as exc:  # any parser error is a bad file, said in one line
        raise InvalidInputError(f"model config {path} cannot be parsed: {exc}") from None
    return spec_from_dict(config, name=path.stem)
