"""What one benchmark run measures: a config, a backend, a precision and a device (``RunSpec``),
and the ``--compare`` grammar that names several of them.

::

    SPEC     := [CONFIG "/"] BACKEND [":" PRECISION] ["@" DEVICE]
    COMPARE  := SPEC ("," SPEC)*

    CONFIG    tiny | base                       default: --config
    BACKEND   torch | cudagraph | onnxruntime | tensorrt
    PRECISION fp32 | fp16 | int8                default: --precision
    DEVICE    cpu | cuda | cuda:N               default: --device

e.g. ``torch,onnxruntime`` (both at the command's config, precision and device),
``torch:fp16@cuda,cudagraph:fp16@cuda,tensorrt:int8@cuda``, ``tiny/torch,base/torch``.
Every spec is checked before anything is built, so a typo in the fifth spec does not cost the
minutes of building the first four: the combinations that cannot exist (what each backend of
``perception.model.backends`` refuses) fail here with the spec and the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from perception.bench.errors import BenchError

__all__ = ["BACKENDS", "CONFIGS", "PRECISIONS", "RunSpec", "parse_compare", "parse_spec"]

CONFIGS = ("tiny", "base")
BACKENDS = ("torch", "cudagraph", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")
_CUDA_ONLY = ("cudagraph", "tensorrt")


@dataclass(frozen=True)
class RunSpec:
    """One combination to time. ``label`` is how tables and plots name it."""

    config: str = "tiny"
    backend: str = "torch"
    precision: str = "fp32"
    device: str = "cpu"

    @property
    def label(self) -> str:
        return f"{self.config}/{self.backend}:{self.precision}@{self.device}"

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def check(self, where: str = "") -> RunSpec:
        """Raise ``BenchError`` (prefixed with ``where``) when this combination cannot run; returns self."""
        at = f"{where}: " if where else ""
        if self.config not in CONFIGS:
            raise BenchError(f"{at}config {self.config!r}: expected one of {list(CONFIGS)}")
        if self.backend not in BACKENDS:
            raise BenchError(f"{at}backend {self.backend!r}: expected one of {list(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise BenchError(f"{at}precision {self.precision!r}: expected one of {list(PRECISIONS)}")
        if not _DEVICE.fullmatch(self.device):
            raise BenchError(f"{at}device {self.device!r}: expected cpu, cuda or cuda:N")
        if self.backend in _CUDA_ONLY and not self.cuda:
            raise BenchError(f"{at}backend {self.backend} runs on CUDA only; got device {self.device} (add @cuda)")
        if self.precision == "int8" and self.backend != "tensorrt":
            raise BenchError(f"{at}int8 is a TensorRT engine precision; backend {self.backend} runs fp32 or fp16")
        if self.backend == "onnxruntime" and self.precision != "fp32":
            raise BenchError(f"{at}onnxruntime runs the fp32 graph; got {self.precision}")
        if self.precision == "fp16" and not self.cuda:
            raise BenchError(f"{at}fp16 runs on CUDA only (torch has no fast half kernels on the CPU); got device {self.device}")
        return self


def parse_spec(text: str, default: RunSpec) -> RunSpec:
    """One SPEC of the module docstring; missing parts come from ``default``. Checked."""
    raw = text.strip()
    if not raw:
        raise BenchError("--compare: an empty spec (two commas in a row, or a trailing comma?)")
    rest, device = raw, default.device
    if "@" in rest:
        rest, device = rest.split("@", 1)
    config = default.config
    if "/" in rest:
        config, rest = rest.split("/", 1)
    precision = default.precision
    if ":" in rest:
        rest, precision = rest.split(":", 1)
    spec = replace(default, config=config.strip(), backend=rest.strip(), precision=precision.strip(), device=device.strip())
    return spec.check(f"--compare spec {raw!r} ([CONFIG/]BACKEND[:PRECISION][@DEVICE])")


def parse_compare(text: str, default: RunSpec) -> list[RunSpec]:
    """Every SPEC of a COMPARE, in order (the first is the baseline the others are divided by).
    A combination named twice is an error: interleaving it with itself measures nothing new."""
    specs = [parse_spec(part, default) for part in text.split(",")]
    seen: dict[RunSpec, str] = {}
    for part, spec in zip(text.split(","), specs):
        if spec in seen:
            raise BenchError(f"--compare: {part.strip()!r} and {seen[spec]!r} are the same run ({spec.label})")
        seen[spec] = part.strip()
    return specs
