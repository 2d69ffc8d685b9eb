"""TensorRT: engine build from the exported ONNX graph (fp32, fp16, int8 with an entropy calibrator),
an on-disk engine cache, and the TensorRT inference backend.

Written against the TensorRT 10 Python API (``create_network(0)``: explicit batch is the only mode;
``set_memory_pool_limit``; ``build_serialized_network``; tensors bound by name with
``set_tensor_address`` and run with ``execute_async_v3`` on torch's current stream). ``tensorrt`` is
imported only when used, so the rest of bevfuse runs where it is absent; asking for it there gives
one message that says how to install it.

Cache layout (``cache_dir``, default ``$BEVFUSE_CACHE`` or ``~/.cache/bevfuse``)::

    engines/<key>.engine         key = sha256(onnx file sha256, precision, TensorRT version, GPU name)
    engines/<key>.engine.json    the config and the facts of the key (read by the backend)
    timing/<gpu>-trt<version>.cache     TensorRT timing cache, shared by every build on that GPU
    calibration/<onnx sha256[:16]>.calib  INT8 calibration cache (depends on the model, not the GPU)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from perception.config import PipelineConfig, from_dict, to_dict
from perception.model.backends import Backend, _cuda_device
from perception.model.errors import BackendError, ExportError
from perception.model.export import config_from_onnx, file_sha256
from perception.model.spec import INPUT_NAMES, OUTPUT_NAMES

__all__ = [
    "ENGINE_PRECISIONS",
    "INSTALL_HINT",
    "TensorRTBackend",
    "build_engine",
    "default_cache_dir",
    "engine_cache_key",
    "import_tensorrt",
]

ENGINE_PRECISIONS = ("fp32", "fp16", "int8")
INSTALL_HINT = (
    "TensorRT is not installed in this Python environment. On x86_64 with CUDA 12: "
    "pip install 'bevfuse[tensorrt]' (NVIDIA's tensorrt wheel, version 10 or later); on Jetson it comes with "
    "JetPack: sudo apt install python3-libnvinfer, and make the venv with --system-site-packages so it sees it"
)


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module (10 or later), or ``BackendError`` with how to install it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendError(INSTALL_HINT) from None
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        raise BackendError(f"TensorRT {trt.__version__} is installed; bevfuse needs 10 or later. {INSTALL_HINT}")
    return trt


def default_cache_dir() -> Path:
    env = os.environ.get("BEVFUSE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "bevfuse"


def engine_cache_key(model_sha256: str, precision: str, tensorrt_version: str, gpu_name: str) -> str:
    """The engine cache key: an engine is only valid for one model, precision, TensorRT version and GPU."""
    if precision not in ENGINE_PRECISIONS:
        raise ExportError(f"precision: expected one of {list(ENGINE_PRECISIONS)}, got {precision!r}")
    text = "\n".join(("bevfuse-engine-v1", model_sha256, precision, tensorrt_version, gpu_name))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def _gpu_name(device: torch.device) -> str:
    _cuda_device(device, "TensorRT")
    return torch.cuda.get_device_name(device)


_TORCH_DTYPES: dict[str, torch.dtype] = {
    "FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT32": torch.int32,
    "INT64": torch.int64, "INT8": torch.int8, "UINT8": torch.uint8, "BOOL": torch.bool,
}


def _torch_dtype(trt_dtype: Any) -> torch.dtype:
    name = str(trt_dtype).rsplit(".", 1)[-1]
    try:
        return _TORCH_DTYPES[name]
    except KeyError:
        raise BackendError(f"TensorRT tensor type {trt_dtype} has no torch equivalent here") from None


def _make_calibrator(trt: ModuleType, batches: Iterable[Mapping[str, np.ndarray]], cache: Path, device: torch.device) -> Any:
    """An entropy calibrator (TensorRT's IInt8EntropyCalibrator2) over named-input batches of size 1.

    TensorRT asks for batches by input name and reads device pointers; the last batch's tensors are
    kept referenced until the next request so the pointers stay valid while TensorRT reads them.
    With a calibration cache on disk TensorRT skips the batches entirely.
    """

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = iter(batches)
            self._held: dict[str, torch.Tensor] = {}
            self.count = 0

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                batch = next(self._batches)
            except StopIteration:
                return None
            self._held = {n: torch.as_tensor(np.ascontiguousarray(batch[n])).to(device) for n in names}
            self.count += 1
            return [int(self._held[n].data_ptr()) for n in names]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(bytes(data))

    return EntropyCalibrator()


def build_engine(
    onnx_path: str | Path,
    out: str | Path,
    precision: str = "fp16",
    cache_dir: str | Path | None = None,
    calibration: Iterable[Mapping[str, np.ndarray]] | None = None,
    device: str | torch.device = "cuda",
    workspace_gib: float = 4.0,
    log: Callable[[str], None] = print,
) -> Path:
    """Build (or take from the cache) a TensorRT engine for ``onnx_path`` and write it to ``out``.

    ``calibration``: named-input frames for INT8 (needed unless a calibration cache exists for this
    model). Writes ``out`` and ``out.json`` (config + key facts, read by ``TensorRTBackend``).
    """
    trt = import_tensorrt()
    onnx_path, out = Path(onnx_path), Path(out)
    dev = torch.device(device)
    cfg = config_from_onnx(onnx_path)
    model_sha = file_sha256(onnx_path)
    gpu = _gpu_name(dev)
    key = engine_cache_key(model_sha, precision, trt.__version__, gpu)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    cached = root / "engines" / f"{key}.engine"
    facts = {"config": to_dict(cfg), "onnx_sha256": model_sha, "precision": precision, "tensorrt": trt.__version__,
             "gpu": gpu, "key": key}
    if not cached.is_file():
        log(f"building a {precision} TensorRT {trt.__version__} engine for {gpu} from {onnx_path} (minutes) ...")
        _build(trt, onnx_path, cached, precision, root, model_sha, gpu, calibration, dev, workspace_gib)
        cached.with_name(cached.name + ".json").write_text(json.dumps(facts, indent=1))
    else:
        log(f"engine cache hit: {cached}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.resolve() != cached.resolve():
        shutil.copyfile(cached, out)
    out.with_name(out.name + ".json").write_text(json.dumps(facts, indent=1))
    return out


def _build(trt: ModuleType, onnx_path: Path, cached: Path, precision: str, root: Path, model_sha: str, gpu: str,
           calibration: Iterable[Mapping[str, np.ndarray]] | None, device: torch.device, workspace_gib: float) -> None:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"{onnx_path}: TensorRT's ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    timing_path = root / "timing" / f"{_slug(gpu)}-trt{trt.__version__}.cache"
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    calibrator = None
    if precision in ("fp16", "int8"):
        # INT8 keeps FP16 on: layers TensorRT cannot quantize fall back to half, not to float.
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        calib_cache = root / "calibration" / f"{model_sha[:16]}.calib"
        if calibration is None and not calib_cache.is_file():
            raise ExportError(f"int8: needs calibration frames (--calib-data) or a calibration cache at {calib_cache}")
        config.set_flag(trt.BuilderFlag.INT8)
        calibrator = _make_calibrator(trt, calibration or [], calib_cache, device)
        config.int8_calibrator = calibrator
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"{onnx_path}: TensorRT could not build a {precision} engine (see its log above)")
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(cached.name + ".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(cached)
    timing_path.parent.mkdir(parents=True, exist_ok=True)
    timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    del calibrator  # referenced until here: TensorRT calls back into it during the build


class TensorRTBackend(Backend):
    """A TensorRT engine: every I/O tensor bound by name, run on torch's current CUDA stream."""

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, device: str | torch.device = "cuda") -> None:
        engine_path = Path(engine_path)
        sidecar = engine_path.with_name(engine_path.name + ".json")
        if not engine_path.is_file() or not sidecar.is_file():
            raise BackendError(f"{engine_path}: engine or its {sidecar.name} not found (bevfuse export --engine writes both)")
        facts = json.loads(sidecar.read_text())
        super().__init__(from_dict(PipelineConfig, facts["config"], str(sidecar)))
        trt = import_tensorrt()
        self.device = _cuda_device(device, "tensorrt backend")
        if facts.get("tensorrt") != trt.__version__ or facts.get("gpu") != torch.cuda.get_device_name(self.device):
            raise BackendError(f"{engine_path}: built with TensorRT {facts.get('tensorrt')} for {facts.get('gpu')}; this is "
                               f"TensorRT {trt.__version__} on {torch.cuda.get_device_name(self.device)}: rebuild it")
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise BackendError(f"{engine_path}: TensorRT could not load the engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if sorted(inputs) != sorted(INPUT_NAMES) or sorted(outputs) != sorted(OUTPUT_NAMES):
            raise BackendError(f"{engine_path}: engine tensors {names} are not bevfuse's inputs {list(INPUT_NAMES)} "
                               f"and outputs {list(OUTPUT_NAMES)}")
        self.dtypes = {n: _torch_dtype(self.engine.get_tensor_dtype(n)) for n in names}
        with torch.cuda.device(self.device):
            self.outputs = {n: torch.empty(tuple(self.engine.get_tensor_shape(n)), dtype=self.dtypes[n], device=self.device)
                            for n in OUTPUT_NAMES}
        for n in OUTPUT_NAMES:
            self.context.set_tensor_address(n, self.outputs[n].data_ptr())

    @torch.no_grad()
    def run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        stream = torch.cuda.current_stream(self.device)
        # Inputs copied to the device by torch on this same stream: the caching allocator does not
        # reuse their memory before the stream passes the enqueued engine, so no sync is needed.
        held = {n: inputs[n].to(device=self.device, dtype=self.dtypes[n]).contiguous() for n in INPUT_NAMES}
        for n, t in held.items():
            self.context.set_tensor_address(n, t.data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise BackendError("tensorrt backend: execute_async_v3 failed (see TensorRT's log)")
        return {n: t.clone() for n, t in self.outputs.items()}
