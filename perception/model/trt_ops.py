"""The ONNX operators that TensorRT 10's ONNX parser supports, and the restrictions that matter to us.

Source: onnx-tensorrt ``docs/operators.md`` (https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md),
the version headed "TensorRT 10.15 supports operators in the inclusive range of opset 9 to opset 24",
read 2026-11-27: every row marked ``Y``. The operators our graph actually uses (``docs/MODEL.md``)
are also in the TensorRT 8.5 table of the same file, so the list is not the binding constraint.
``unsupported_nodes`` checks a graph against it, including the per-operator restrictions of that
table for the operators a CNN export can produce.
"""

from __future__ import annotations

import onnx

__all__ = ["OPSET_RANGE", "SOURCE", "TENSORRT10_ONNX_OPS", "unsupported_nodes"]

SOURCE = "https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md (TensorRT 10.15 table)"
OPSET_RANGE = (9, 24)

TENSORRT10_ONNX_OPS: frozenset[str] = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization
BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike
Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool
Greater GreaterOrEqual GridSample GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish
Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less
LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean
ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RMSNormalization RNN
RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink
Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan
Tanh TensorScatter ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

_RESIZE_MODES = {"nearest", "linear"}
_RESIZE_COORDS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _restriction(node: onnx.NodeProto, ranks: dict[str, int]) -> str | None:
    """The table's restriction this node breaks, or None."""
    op = node.op_type
    if op == "ScatterND" and _attr(node, "reduction", "none") != "none":
        return "ScatterND: reduction other than none"
    if op == "GridSample" and ranks.get(node.input[0], 4) != 4:
        return f"GridSample: input must be 4-D, got rank {ranks.get(node.input[0])}"
    if op == "Resize":
        if _attr(node, "mode", "nearest") not in _RESIZE_MODES:
            return f"Resize: mode {_attr(node, 'mode', None)!r}"
        if _attr(node, "coordinate_transformation_mode", "half_pixel") not in _RESIZE_COORDS:
            return f"Resize: coordinate_transformation_mode {_attr(node, 'coordinate_transformation_mode', None)!r}"
        if _attr(node, "antialias", 0):
            return "Resize: antialiasing"
    if op in ("AveragePool", "MaxPool", "LpPool") and any(d != 1 for d in _attr(node, "dilations", []) or []):  # type: ignore[union-attr]
        return f"{op}: dilations other than 1"
    if op in ("Conv", "ConvTranspose", "AveragePool", "MaxPool") and ranks.get(node.input[0], 4) not in (4, 5):
        return f"{op}: only 2-D or 3-D spatial inputs"
    return None


def unsupported_nodes(model: onnx.ModelProto) -> list[str]:
    """One line per node TensorRT 10's ONNX parser would reject (unknown operator, custom domain,
    or a listed restriction), and one for an opset outside its range; empty when all is supported."""
    problems = []
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and not OPSET_RANGE[0] <= imp.version <= OPSET_RANGE[1]:
            problems.append(f"opset {imp.version}: outside TensorRT 10's range {OPSET_RANGE}")
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if vi.type.tensor_type.HasField("shape"):
            ranks[vi.name] = len(vi.type.tensor_type.shape.dim)
    for node in model.graph.node:
        where = f"node {node.name or '?'} ({node.op_type})"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where}: custom domain {node.domain!r}")
        elif node.op_type not in TENSORRT10_ONNX_OPS:
            problems.append(f"{where}: not supported by TensorRT 10's ONNX parser")
        else:
            why = _restriction(node, ranks)
            if why:
                problems.append(f"{where}: {why}")
    return problems
