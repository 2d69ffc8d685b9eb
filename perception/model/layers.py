"""Building blocks shared by the branches: convolution + batch norm + ReLU, in 1-D and 2-D."""

from __future__ import annotations

from torch import nn

__all__ = ["conv_bn_relu"]


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """A conv (no bias: the batch norm's shift replaces it) + BN + ReLU; 'same' padding for odd kernels.

    Batch norm folds into the convolution at export (constant folding / TensorRT), so it costs
    nothing at inference.
    """
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
        nn.ReLU(inplace=True),
    )
