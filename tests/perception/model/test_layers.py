"""fold_batch_norms: the folded copy computes the same function and leaves the original untouched."""

from __future__ import annotations

import torch
from torch import nn

from perception.model.layers import fold_batch_norms
from perception.model.network import DeployModel
from perception.model.spec import random_inputs
from tests.perception.model.helpers import max_rel_err, micro_config, randomized_net


def test_folded_network_computes_the_same_heads():
    cfg = micro_config()
    net = randomized_net(cfg, seed=3)
    folded = fold_batch_norms(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) > 10  # the original keeps its norms
    x = [torch.from_numpy(v) for v in random_inputs(cfg, seed=0).values()]
    with torch.no_grad():
        want = DeployModel(net).eval()(*x)
        got = DeployModel(folded)(*x)
    for a, b in zip(got, want):
        assert max_rel_err(a, b) < 1e-5
