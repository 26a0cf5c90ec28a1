"""The conv feature encoder's fp32 norms on CPU bf16 activations: the group norm (and, without gradients, the
layer norm) hands them to the kernel as they are, which computes in fp32 inside; the result is what the explicit
fp32 upcast gives, forward and backward."""

import pytest
import torch
import torch.nn.functional as F

from speech_ssl.models.feature_encoder import Fp32ChannelLayerNorm, Fp32GroupNorm


def _norm(kind):
    torch.manual_seed(0)
    m = Fp32GroupNorm(16, 16, affine=True) if kind == "group" else Fp32ChannelLayerNorm(16, elementwise_affine=True)
    with torch.no_grad():
        m.weight.normal_()
        m.bias.normal_()
    return m


def _upcast(norm, x):
    """The reference: the norm on the fp32 copy of x, cast back to x's dtype."""
    if isinstance(norm, Fp32GroupNorm):
        return F.group_norm(x.float(), norm.num_groups, norm.weight, norm.bias, norm.eps).to(x.dtype)
    y = F.layer_norm(x.transpose(1, 2).float(), norm.normalized_shape, norm.weight, norm.bias, norm.eps)
    return y.transpose(1, 2).to(x.dtype)


def _x():
    return (torch.randn(2, 16, 300, generator=torch.Generator().manual_seed(1)) * 3 + 1).to(torch.bfloat16)


@pytest.mark.parametrize("kind", ["group", "layer"])
def test_bf16_forward_is_the_fp32_upcast_to_one_rounding(kind):
    norm, x = _norm(kind), _x()
    with torch.no_grad():
        y, ref = norm(x), _upcast(norm, x)
    assert y.dtype == torch.bfloat16 and y.shape == x.shape
    ulp = ref.float().abs().clamp(min=1e-2) * 2**-7  # the same fp32 arithmetic up to summation order
    assert torch.all((y.float() - ref.float()).abs() <= ulp)


@pytest.mark.parametrize("kind", ["group", "layer"])
def test_bf16_gradients_are_as_accurate_as_the_upcast(kind):
    norm, x = _norm(kind), _x()
    up = torch.randn(2, 16, 300, generator=torch.Generator().manual_seed(2))
    params = [norm.weight, norm.bias]

    def grads(fn, inp):
        inp = inp.detach().clone().requires_grad_()
        return torch.autograd.grad((fn(inp).float() * up).sum(), [inp, *params])

    exact = grads(norm, x.float())  # fp32 all the way
    ours, upcast = grads(norm, x), grads(lambda v: _upcast(norm, v), x)
    for o, u, e in zip(ours, upcast, exact):
        assert o.dtype == u.dtype
        err_o, err_u = (o.float() - e).abs().max().item(), (u.float() - e).abs().max().item()
        assert err_o <= 1.5 * err_u + 1e-6 * e.abs().max().item(), (err_o, err_u)


@pytest.mark.parametrize("kind", ["group", "layer"])
def test_fp32_is_the_plain_norm(kind):
    norm = _norm(kind)
    x = torch.randn(2, 16, 50)
    assert torch.equal(norm(x), _upcast(norm, x))
