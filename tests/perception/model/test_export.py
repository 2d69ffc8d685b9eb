"""ONNX export and the backends: ONNX Runtime equals torch, the graph holds only operators TensorRT
10 parses, named static I/O, the backend interface, TensorRT's cache key and its absence."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest
import torch

from perception.errors import ShapeError
from perception.model.backends import BACKENDS, make_backend
from perception.model.errors import BackendError, ExportError
from perception.model.export import config_from_onnx, export_onnx
from perception.model.spec import INPUT_NAMES, OUTPUT_NAMES, input_specs, output_specs, random_inputs
from perception.model.tensorrt import INSTALL_HINT, engine_cache_key
from perception.model.trt_ops import TENSORRT10_ONNX_OPS, unsupported_nodes
from tests.perception.model.helpers import max_rel_err, micro_config, randomized_net

torch.set_num_threads(2)
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cfg = micro_config()
    net = randomized_net(cfg, seed=3)
    path = export_onnx(net, tmp_path_factory.mktemp("onnx") / "micro.onnx")
    return net, path


def _partly_missing(cfg, seed):
    x = random_inputs(cfg, seed=seed)
    x["camera_mask"][0, 0] = 0.0
    x["radar_mask"][:] = 0.0
    x["radar_bev"][:] = 0.0
    return x


@pytest.mark.parametrize("case", ["random", "sensors-missing"])
def test_onnxruntime_equals_torch_fp32(exported, case):
    net, path = exported
    cfg = net.cfg
    x = random_inputs(cfg, seed=11) if case == "random" else _partly_missing(cfg, 12)
    ort_out = make_backend("onnxruntime", onnx=path)(x)
    torch_out = make_backend("torch", net=net)(x)
    for name in OUTPUT_NAMES:
        assert max_rel_err(ort_out[name], torch_out[name]) < 1e-4, name


def test_graph_has_named_static_io_and_carries_its_config(exported):
    net, path = exported
    model = onnx.load(str(path))
    assert max(i.version for i in model.opset_import if i.domain in ("", "ai.onnx")) >= 17
    specs = {**input_specs(net.cfg), **output_specs(net.cfg)}
    for vi, names in ((model.graph.input, INPUT_NAMES), (model.graph.output, OUTPUT_NAMES)):
        assert [v.name for v in vi] == list(names)
        for v in vi:
            dims = [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
            assert tuple(dims) == specs[v.name].shape, v.name
    assert config_from_onnx(path) == net.cfg
    # Constant folding: no batch norm left, no op computing on constants alone.
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}


def test_every_operator_is_in_tensorrt10s_parser_list(exported):
    _, path = exported
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert ops <= TENSORRT10_ONNX_OPS, ops - TENSORRT10_ONNX_OPS
    assert unsupported_nodes(model) == []
    assert {"GridSample", "ScatterElements"} <= ops  # the lift and the scatter are in the graph


def test_the_operator_check_rejects_what_tensorrt_cannot_parse():
    h = onnx.helper
    x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4])
    nodes = [h.make_node("Unique", ["x"], ["u"], name="uniq"), h.make_node("MyOp", ["x"], ["v"], domain="custom", name="mine"),
             h.make_node("Relu", ["x"], ["y"])]
    model = h.make_model(h.make_graph(nodes, "g", [x], [y]), opset_imports=[h.make_opsetid("", 17), h.make_opsetid("custom", 1)])
    problems = unsupported_nodes(model)
    assert any("uniq (Unique): not supported" in p for p in problems)
    assert any("mine (MyOp): custom domain 'custom'" in p for p in problems)
    assert len(problems) == 2


def test_opset_below_17_is_refused(tmp_path):
    with pytest.raises(ExportError, match="opset: expected >= 17, got 16"):
        export_onnx(randomized_net(micro_config()), tmp_path / "a.onnx", opset=16)


def test_backend_interface_numpy_in_numpy_out_torch_in_torch_out(exported):
    net, _ = exported
    backend = make_backend("torch", net=net)
    x = random_inputs(net.cfg, seed=4)
    out = backend(x)
    assert list(out) == list(OUTPUT_NAMES) and all(isinstance(v, np.ndarray) for v in out.values())
    out_t = backend({k: torch.from_numpy(v) for k, v in x.items()})
    assert all(isinstance(v, torch.Tensor) for v in out_t.values())
    for name in OUTPUT_NAMES:
        np.testing.assert_array_equal(out[name], out_t[name].numpy())
        assert out[name].shape == output_specs(net.cfg)[name].shape
    assert 0.0 <= out["heatmap"].min() and out["heatmap"].max() <= 1.0  # probabilities


def test_backend_inputs_are_checked_by_name(exported):
    net, _ = exported
    backend = make_backend("torch", net=net)
    x = random_inputs(net.cfg)
    bad = dict(x, images=x["images"][:, :1])
    with pytest.raises(ShapeError, match=r"images: expected shape \(1, 2, 3, 48, 96\)"):
        backend(bad)
    with pytest.raises(ShapeError, match="pillar_coords: expected dtype int32, got int64"):
        backend(dict(x, pillar_coords=x["pillar_coords"].astype(np.int64)))
    with pytest.raises(BackendError, match=r"missing \['radar_bev'\]"):
        backend({k: v for k, v in x.items() if k != "radar_bev"})


def test_backend_choices_and_their_errors(exported):
    net, _ = exported
    assert set(BACKENDS) == {"torch", "cuda-graph", "onnxruntime", "tensorrt"}
    with pytest.raises(BackendError, match="backend 'trt': expected one of"):
        make_backend("trt")
    with pytest.raises(BackendError, match="fp16 runs on CUDA only"):
        make_backend("torch", net=net, precision="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="no CUDA GPU"):
            make_backend("cuda-graph", net=net)


def test_engine_cache_key_changes_with_each_part():
    base = ("ab" * 32, "fp16", "10.3.0", "Orin")
    keys = {engine_cache_key(*base)}
    for i, other in enumerate(("cd" * 32, "int8", "10.4.0", "NVIDIA H100")):
        parts = list(base)
        parts[i] = other
        keys.add(engine_cache_key(*parts))
    assert len(keys) == 5 and all(len(k) == 32 for k in keys)
    assert engine_cache_key(*base) == engine_cache_key(*base)
    with pytest.raises(ExportError, match="precision"):
        engine_cache_key("ab", "fp8", "10", "x")


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here: the missing-TensorRT message cannot be shown")
def test_without_tensorrt_one_clear_message(exported, tmp_path, capsys):
    from perception.cli import main
    from perception.model.checkpoint import save_checkpoint
    from perception.model.tensorrt import build_engine

    net, path = exported
    with pytest.raises(BackendError) as info:
        build_engine(path, tmp_path / "m.engine")
    assert str(info.value) == INSTALL_HINT and "pip install 'bevfuse[tensorrt]'" in INSTALL_HINT
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"")
    engine.with_name("x.engine.json").write_text('{"config": {}}')
    with pytest.raises(BackendError, match="TensorRT is not installed"):
        make_backend("tensorrt", engine=engine)
    ckpt = save_checkpoint(tmp_path / "m.pt", net)
    assert main(["export", "--model", str(ckpt), "--engine", str(tmp_path / "m.engine")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "TensorRT is not installed" in err[0]
    assert (tmp_path / "m.onnx").is_file()  # the ONNX half was done before the engine was asked for


def test_export_command_writes_a_graph_onnxruntime_runs(exported, tmp_path):
    from perception.cli import main
    from perception.model.checkpoint import save_checkpoint

    net, _ = exported
    ckpt = save_checkpoint(tmp_path / "m.pt", net)
    assert main(["export", "--model", str(ckpt), "--onnx", str(tmp_path / "m.onnx")]) == 0
    x = random_inputs(net.cfg, seed=8)
    a = make_backend("onnxruntime", onnx=tmp_path / "m.onnx")(x)
    b = make_backend("torch", checkpoint=ckpt)(x)
    assert max_rel_err(a["heatmap"], b["heatmap"]) < 1e-4


# ---- GPU: tolerances documented in docs/MODEL.md ("Backends") -------------------------------------

FP16_TOL = {"heatmap": 2e-2, "offset": 2e-2, "height": 2e-2, "size": 2e-2, "rot": 2e-2, "velocity": 2e-2}


@pytest.mark.gpu
def test_torch_fp16_and_cuda_graph_agree_with_fp32(exported):
    net, _ = exported
    x = random_inputs(net.cfg, seed=9)
    ref = make_backend("torch", net=net, device="cuda")(x)
    half = make_backend("torch", net=net, device="cuda", precision="fp16")(x)
    graph = make_backend("cuda-graph", net=net)
    for _ in range(2):  # replays reuse the captured buffers
        replay = graph(x)
    for name in OUTPUT_NAMES:
        assert max_rel_err(half[name], ref[name]) < FP16_TOL[name], name
        assert max_rel_err(replay[name], ref[name]) < 1e-5, name


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_TRT, reason="TensorRT is not installed (pip install 'bevfuse[tensorrt]')")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_agrees_with_torch(exported, tmp_path, precision):
    from perception.model.tensorrt import build_engine

    net, path = exported
    engine = build_engine(path, tmp_path / f"m-{precision}.engine", precision, cache_dir=tmp_path / "cache")
    x = random_inputs(net.cfg, seed=10)
    got = make_backend("tensorrt", engine=engine)(x)
    ref = make_backend("torch", net=net, device="cuda")(x)
    tol = 1e-3 if precision == "fp32" else FP16_TOL["heatmap"]
    for name in OUTPUT_NAMES:
        assert max_rel_err(got[name], ref[name]) < tol, name
    # Second build: a cache hit, same bytes.
    again = build_engine(path, tmp_path / "again.engine", precision, cache_dir=tmp_path / "cache")
    assert again.read_bytes() == engine.read_bytes()
