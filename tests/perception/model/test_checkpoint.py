"""Checkpoints: the file alone rebuilds the model; every unusable file is one clear error."""

from __future__ import annotations

import pytest
import torch

from perception.errors import BevfuseError, InputFileError
from perception.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from perception.model.config import preset
from perception.model.errors import CheckpointError
from perception.model.spec import random_inputs
from tests.perception.model.helpers import micro_config, randomized_net

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    net = randomized_net(micro_config(), seed=1)
    return net, save_checkpoint(tmp_path_factory.mktemp("ckpt") / "micro.pt", net, meta={"steps": 3})


def test_round_trip_rebuilds_the_same_function(saved):
    net, path = saved
    raw = torch.load(path, weights_only=True)  # a plain dict: weights_only loading accepts it
    assert raw["class_names"] == list(net.cfg.model.classes) and raw["grid"]["cell_m"] == 1.6
    loaded, meta = load_checkpoint(path, expect=micro_config())
    assert meta == {"steps": 3} and loaded.cfg == net.cfg
    x = {k: torch.from_numpy(v) for k, v in random_inputs(net.cfg).items()}
    with torch.no_grad():
        a, b = net(x), loaded(x)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


def test_another_config_names_the_keys_that_differ(saved):
    _, path = saved
    want = (r"micro.pt: trained for config 'micro' \(1.6 m cells\), expected 'tiny' \(0.8 m cells\); "
            r"checkpoint != expected: grid.cell_m: 1.6 != 0.8; model.backbone")
    with pytest.raises(CheckpointError, match=want):
        load_checkpoint(path, expect=preset("tiny"))


def test_truncated_file(saved, tmp_path):
    _, path = saved
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cut.pt: not a readable checkpoint \(truncated or damaged file\?\)"):
        load_checkpoint(cut)


def test_mismatched_shapes_name_the_tensor(saved, tmp_path):
    _, path = saved
    data = read_checkpoint(path)
    key = "head.heatmap.1.weight"
    data["state_dict"][key] = torch.zeros(3, *data["state_dict"][key].shape[1:])
    bad = tmp_path / "bad.pt"
    torch.save(data, bad)
    with pytest.raises(CheckpointError, match=r"bad.pt: weights do not fit .*head.heatmap.1.weight: checkpoint \(3, 16, 1, 1\) "
                                              r"!= network \(10, 16, 1, 1\)"):
        load_checkpoint(bad)


def test_other_files(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a bevfuse checkpoint"):
        load_checkpoint(other)
    with pytest.raises(InputFileError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(BevfuseError):
        load_checkpoint(junk)
