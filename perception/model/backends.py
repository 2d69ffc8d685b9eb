"""Inference backends behind one interface: named tensors in, named tensors out.

``backend(inputs)`` takes the named inputs of ``perception.model.spec`` (numpy arrays or torch
tensors; checked against the table, a wrong name, shape or dtype raises with the name) and returns
the named outputs: numpy arrays when every input was numpy, else torch tensors on the backend's
device. Outputs are float32 whatever precision ran inside, so callers never branch on the backend.

=============  ============================================  ========================================
kind           runs                                          where
=============  ============================================  ========================================
torch          the network eagerly, fp32 or fp16             CPU (fp32) or CUDA
cuda-graph     the network replayed from a captured graph    CUDA (static input buffers)
onnxruntime    the exported ONNX graph                       CPU, or its CUDA provider where present
tensorrt       a TensorRT engine, bindings by name           CUDA, on torch's current stream
=============  ============================================  ========================================
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perception.config import PipelineConfig
from perception.model.errors import BackendError
from perception.model.layers import fold_batch_norms
from perception.model.network import BEVFusionNet, DeployModel
from perception.model.spec import INPUT_NAMES, OUTPUT_NAMES, TensorSpec, input_specs, output_specs

__all__ = [
    "BACKENDS",
    "Backend",
    "CudaGraphBackend",
    "OnnxRuntimeBackend",
    "TorchBackend",
    "make_backend",
]

PRECISIONS = ("fp32", "fp16")


class Backend(ABC):
    """Named tensors in, named tensors out (see the module docstring)."""

    name: str = "backend"

    def __init__(self, cfg: PipelineConfig) -> None:
        self.cfg = cfg
        self.input_specs: dict[str, TensorSpec] = input_specs(cfg)
        self.output_specs: dict[str, TensorSpec] = output_specs(cfg)

    def __call__(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(inputs) - set(INPUT_NAMES))
        missing = [n for n in INPUT_NAMES if n not in inputs]
        if unknown or missing:
            raise BackendError(f"{self.name} backend: inputs: missing {missing}, unknown {unknown}; expected {list(INPUT_NAMES)}")
        for name in INPUT_NAMES:
            self.input_specs[name].check(inputs[name])
        as_numpy = all(isinstance(v, np.ndarray) for v in inputs.values())
        tensors = {n: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v for n, v in inputs.items()}
        out = self.run(tensors)
        out = {n: out[n].float() for n in OUTPUT_NAMES}
        if as_numpy:
            return {n: t.detach().cpu().numpy() for n, t in out.items()}
        return out

    @abstractmethod
    def run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Checked torch inputs (any device) -> outputs (float, on the backend's device)."""


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise BackendError(f"precision: expected one of {list(PRECISIONS)}, got {precision!r}")


def _cuda_device(device: str | torch.device, who: str) -> torch.device:
    dev = torch.device(device)
    if dev.type != "cuda":
        raise BackendError(f"{who}: needs a CUDA device, got {dev}")
    if not torch.cuda.is_available():
        raise BackendError(f"{who}: no CUDA GPU is available here (torch {torch.__version__}, cuda {torch.version.cuda})")
    return dev


def _to_device(inputs: Mapping[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
    # Float inputs take the compute precision; integer inputs (pillar counts and cells) stay integers.
    return [inputs[n].to(device=device, dtype=dtype if inputs[n].is_floating_point() else inputs[n].dtype, non_blocking=True)
            for n in INPUT_NAMES]


class TorchBackend(Backend):
    """The network in eager PyTorch: fp32 on CPU or CUDA, fp16 on CUDA."""

    name = "torch"

    def __init__(self, net: BEVFusionNet, device: str | torch.device = "cpu", precision: str = "fp32") -> None:
        super().__init__(net.cfg)
        _check_precision(precision)
        self.device = torch.device(device)
        if self.device.type == "cuda":
            _cuda_device(self.device, "torch backend")
        elif precision == "fp16":
            raise BackendError("torch backend: fp16 runs on CUDA only (CPU kernels for half convolutions are slow or missing)")
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = DeployModel(fold_batch_norms(net)).eval().to(device=self.device, dtype=self.dtype)

    @torch.no_grad()
    def run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        outs = self.model(*_to_device(inputs, self.device, self.dtype))
        return dict(zip(OUTPUT_NAMES, outs))


class CudaGraphBackend(Backend):
    """The network captured once into a CUDA graph and replayed: inputs are copied into static
    buffers, the graph is replayed on the current stream, the outputs are copied out (a later call
    overwrites the graph's own output buffers)."""

    name = "cuda-graph"

    def __init__(self, net: BEVFusionNet, device: str | torch.device = "cuda", precision: str = "fp32", warmup: int = 3) -> None:
        super().__init__(net.cfg)
        _check_precision(precision)
        self.device = _cuda_device(device, "cuda-graph backend")
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = DeployModel(fold_batch_norms(net)).eval().to(device=self.device, dtype=self.dtype)
        self.static_in = []
        for name in INPUT_NAMES:
            spec = self.input_specs[name]
            dtype = self.dtype if spec.dtype.kind == "f" else torch.int32
            self.static_in.append(torch.zeros(spec.shape, dtype=dtype, device=self.device))
        # Warm-up on a side stream (cuDNN picks algorithms, allocator settles), then capture:
        # the pattern torch.cuda.graphs documents for whole-network capture.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(warmup):
                self.model(*self.static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.static_out = self.model(*self.static_in)

    @torch.no_grad()
    def run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for buf, name in zip(self.static_in, INPUT_NAMES):
            buf.copy_(inputs[name], non_blocking=True)
        self.graph.replay()
        return {n: t.clone() for n, t in zip(OUTPUT_NAMES, self.static_out)}


class OnnxRuntimeBackend(Backend):
    """The exported graph in ONNX Runtime; CUDA provider first where this onnxruntime has it."""

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, providers: list[str] | None = None, threads: int = 0) -> None:
        from perception.model.export import config_from_onnx

        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("onnxruntime backend: onnxruntime is not installed: pip install 'bevfuse[onnx]' "
                               "(or onnxruntime-gpu for its CUDA provider)") from None
        super().__init__(config_from_onnx(onnx_path))
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # ORT's pool threads spin after each run by default; in a stack that decodes, synchronizes
        # and preprocesses between two runs they spin on the cores that work needs (measured on
        # 2 cores: input and preprocessing twice as slow, the run itself slower too). Sleep instead.
        if os.environ.get("BEVFUSE_ORT_SPIN", "0") != "1":
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers)
        names = [i.name for i in self.session.get_inputs()]
        if names != list(INPUT_NAMES):
            raise BackendError(f"{onnx_path}: graph inputs {names}, expected {list(INPUT_NAMES)}")
        self.providers = self.session.get_providers()

    def run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feeds = {n: inputs[n].detach().cpu().numpy() for n in INPUT_NAMES}
        outs = self.session.run(list(OUTPUT_NAMES), feeds)
        return {n: torch.from_numpy(o) for n, o in zip(OUTPUT_NAMES, outs)}


def _torch_backend(**kw: Any) -> Backend:
    return TorchBackend(_net(kw), kw.get("device", "cpu"), kw.get("precision", "fp32"))


def _cuda_graph_backend(**kw: Any) -> Backend:
    return CudaGraphBackend(_net(kw), kw.get("device", "cuda"), kw.get("precision", "fp32"))


def _onnxruntime_backend(**kw: Any) -> Backend:
    if not kw.get("onnx"):
        raise BackendError("onnxruntime backend: needs an exported graph (onnx=PATH; bevfuse export --onnx)")
    return OnnxRuntimeBackend(kw["onnx"], threads=int(kw.get("threads") or 0))


def _tensorrt_backend(**kw: Any) -> Backend:
    from perception.model.tensorrt import TensorRTBackend

    if not kw.get("engine"):
        raise BackendError("tensorrt backend: needs an engine (engine=PATH; bevfuse export --engine)")
    return TensorRTBackend(kw["engine"], kw.get("device", "cuda"))


def _net(kw: Mapping[str, Any]) -> BEVFusionNet:
    if kw.get("net") is not None:
        return kw["net"]
    if kw.get("checkpoint"):
        from perception.model.checkpoint import load_checkpoint

        return load_checkpoint(kw["checkpoint"], kw.get("expect"))[0]
    raise BackendError("torch backends: need a network (net=...) or a checkpoint (checkpoint=PATH)")


# Backend kind -> constructor from keyword arguments (net or checkpoint, onnx, engine, device, precision).
BACKENDS: dict[str, Callable[..., Backend]] = {
    "torch": _torch_backend,
    "cuda-graph": _cuda_graph_backend,
    "onnxruntime": _onnxruntime_backend,
    "tensorrt": _tensorrt_backend,
}


def make_backend(kind: str, **kwargs: Any) -> Backend:
    """A backend by kind (``BACKENDS``): e.g. ``make_backend('torch', checkpoint='tiny.pt')``,
    ``make_backend('onnxruntime', onnx='tiny.onnx')``, ``make_backend('tensorrt', engine='tiny.engine')``."""
    try:
        factory = BACKENDS[kind]
    except KeyError:
        raise BackendError(f"backend {kind!r}: expected one of {sorted(BACKENDS)}") from None
    return factory(**kwargs)
