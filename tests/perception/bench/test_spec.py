"""The --compare grammar: parts default from the command, impossible combinations fail before anything runs."""

from __future__ import annotations

import pytest

from perception.bench.errors import BenchError
from perception.bench.spec import RunSpec, parse_compare, parse_spec

DEFAULT = RunSpec("tiny", "torch", "fp32", "cpu")


def test_a_bare_backend_takes_the_rest_from_the_command():
    assert parse_spec("onnxruntime", DEFAULT) == RunSpec("tiny", "onnxruntime", "fp32", "cpu")


def test_every_part_can_be_named():
    spec = parse_spec("base/tensorrt:int8@cuda:1", DEFAULT)
    assert spec == RunSpec("base", "tensorrt", "int8", "cuda:1")
    assert spec.label == "base/tensorrt:int8@cuda:1"
    assert spec.cuda


def test_compare_keeps_the_order_and_strips_spaces():
    specs = parse_compare(" torch , onnxruntime ", DEFAULT)
    assert [s.backend for s in specs] == ["torch", "onnxruntime"]


@pytest.mark.parametrize(("text", "words"), [
    ("tourch", ["backend 'tourch'", "torch"]),
    ("torch:fp8", ["precision 'fp8'"]),
    ("huge/torch", ["config 'huge'", "tiny"]),
    ("torch@gpu", ["device 'gpu'"]),
    ("cudagraph", ["CUDA only", "@cuda"]),
    ("tensorrt:fp16", ["CUDA only"]),
    ("torch:int8@cuda", ["int8", "TensorRT"]),
    ("onnxruntime:fp16@cuda", ["fp32 graph"]),
    ("torch:fp16", ["fp16 runs on CUDA only"]),
])
def test_impossible_specs_say_why(text, words):
    with pytest.raises(BenchError) as err:
        parse_spec(text, DEFAULT)
    msg = str(err.value)
    assert text in msg
    for w in words:
        assert w in msg


def test_an_empty_spec_and_a_repeated_one_are_errors():
    with pytest.raises(BenchError, match="empty spec"):
        parse_compare("torch,,onnxruntime", DEFAULT)
    with pytest.raises(BenchError, match="same run"):
        parse_compare("torch,tiny/torch:fp32", DEFAULT)


def test_check_accepts_the_valid_combinations():
    for spec in (RunSpec(), RunSpec(backend="onnxruntime"), RunSpec(backend="cudagraph", precision="fp16", device="cuda"),
                 RunSpec(backend="tensorrt", precision="int8", device="cuda:0")):
        assert spec.check() is spec
