"""Fixtures shared by the pipeline and replay tests (import them into a test module).

``tiny_checkpoint``: the tiny config with seeded random weights, a real network and a real checkpoint
file, just not a trained one (the shipped checkpoint is what ``make demo`` replays). ``corrupt_log``:
the small log of ``logs.py`` with its damaged messages.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from perception.model.checkpoint import save_checkpoint
    from perception.model.config import preset
    from perception.model.network import build_model

    torch.manual_seed(0)
    net = build_model(preset("tiny"))
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", net, meta={"note": "random weights, for tests"})


@pytest.fixture(scope="session")
def corrupt_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.perception.replay.logs import write_log

    return write_log(tmp_path_factory.mktemp("logs") / "corrupt", corrupt=True)
