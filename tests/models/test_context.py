"""The context network's parts: the positional convolution's FFT path computes the convolution's function."""

import pytest
import torch

from speech_ssl.models.context import PositionalConv


def _pair(dim, kernel, groups):
    torch.manual_seed(0)
    pc = PositionalConv(dim, kernel, groups, impl="conv")
    with torch.no_grad():
        pc.conv.bias.normal_()
        pc.conv.parametrizations.weight.original0.mul_(3.0)  # weight-norm gain away from its init
    return pc


@pytest.mark.parametrize("dim,kernel,groups,B,T", [
    (768, 128, 16, 2, 249),  # BASE's: even kernel (the last frame dropped), T > k
    (32, 16, 4, 3, 10),  # the tiny preset's, T < k
    (32, 16, 4, 2, 249),  # many overlap-save blocks (17 frames each)
    (24, 7, 3, 1, 5),  # odd kernel: nothing dropped
    (24, 7, 3, 2, 1),  # one frame
])
def test_fft_path_equals_the_convolution(dim, kernel, groups, B, T):
    pc = _pair(dim, kernel, groups)
    x = torch.randn(B, T, dim, requires_grad=True)
    params = [pc.conv.bias, *pc.conv.parametrizations.weight.parameters()]
    ref = pc(x)
    g_ref = torch.autograd.grad(ref.square().sum(), [x, *params])
    pc.impl = "fft"
    out = pc(x)
    g_out = torch.autograd.grad(out.square().sum(), [x, *params])
    assert out.shape == ref.shape == (B, T, dim)
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
    for a, b in zip(g_out, g_ref):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()


def test_fft_path_keeps_the_input_dtype_and_rejects_unknown_impl():
    pc = _pair(32, 16, 4)
    pc.impl = "fft"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = pc(torch.randn(2, 9, 32).to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="conv, fft, auto"):
        PositionalConv(32, 16, 4, impl="cudnn")


def test_auto_uses_the_convolution_off_cuda():
    pc = _pair(32, 16, 4)
    pc.impl = "auto"
    x = torch.randn(1, 20, 32)
    pc_conv = _pair(32, 16, 4)
    assert torch.equal(pc(x), pc_conv(x))  # bit-identical: the same convolution, not the FFT
