"""ONNX export of the network: one static graph, named inputs and outputs, constant-folded, checked
against TensorRT 10's operator list, carrying its config so a runtime can rebuild the input shapes.

Why one graph (docs/MODEL.md): the pillar scatter and the camera-to-BEV gather are standard ONNX
operators (ScatterElements, GridSample) that TensorRT runs natively, so one engine covers the whole
network, the CUDA graph captures it whole, and every backend computes the same function as training.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import onnx
import torch

from perception.config import PipelineConfig, to_dict
from perception.model.errors import ExportError
from perception.model.network import BEVFusionNet, DeployModel
from perception.model.spec import INPUT_NAMES, OUTPUT_NAMES, random_inputs
from perception.model.trt_ops import unsupported_nodes

__all__ = ["DEFAULT_OPSET", "config_from_onnx", "export_onnx", "file_sha256"]

# Bumped when the exported graph changes for the same weights (2: the camera lift no longer
# multiplies the sampled features by cam_valid; it relies on the OUTSIDE_LUT input contract).
GRAPH_VERSION = 2

DEFAULT_OPSET = 17
CONFIG_KEY = "bevfuse.config"


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (the model hash of engine cache keys)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_onnx(net: BEVFusionNet, out: str | Path, opset: int = DEFAULT_OPSET, check_tensorrt: bool = True) -> Path:
    """Write ``net`` (batch 1, eval mode, fp32) to ``out`` as ONNX; return the path.

    Raises ``ExportError`` when the opset is below 17 (GridSample needs 16, and 17 is the floor we
    promise) or, with ``check_tensorrt``, when a node is one TensorRT 10's parser would reject.
    """
    if opset < DEFAULT_OPSET:
        raise ExportError(f"opset: expected >= {DEFAULT_OPSET}, got {opset}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = net.cfg
    was_training = net.training
    deploy = DeployModel(net).eval()
    example = tuple(torch.from_numpy(v) for v in random_inputs(cfg, seed=0).values())
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter warns about tracing constants it folds: expected here, the
            # shapes are static by design.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                deploy, example, str(out), dynamo=False, opset_version=opset, do_constant_folding=True,
                input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES), external_data=False,
            )
    finally:
        net.train(was_training)
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    if check_tensorrt:
        problems = unsupported_nodes(model)
        if problems:
            raise ExportError(f"{out}: the graph has nodes TensorRT 10 cannot parse:\n" + "\n".join(problems))
    meta = model.metadata_props.add()
    meta.key, meta.value = CONFIG_KEY, json.dumps(to_dict(cfg))
    model.producer_name = "bevfuse"
    onnx.save(model, str(out))
    return out


def config_from_onnx(path: str | Path) -> PipelineConfig:
    """The ``PipelineConfig`` an exported graph was made from (stored in its metadata)."""
    from perception.config import from_dict

    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == CONFIG_KEY:
            return from_dict(PipelineConfig, json.loads(prop.value), f"{path}: metadata {CONFIG_KEY}")
    raise ExportError(f"{path}: no {CONFIG_KEY} metadata: not exported by bevfuse export")
