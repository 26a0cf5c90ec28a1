"""Host -> device copies: one helper, used by every host-to-device copy the models make."""

import re
from pathlib import Path

import torch

import speech_ssl
from speech_ssl.transfer import to_device


def test_to_device_copies_values_and_keeps_host_tensors_usable():
    t = torch.arange(6).view(2, 3)
    out = to_device(t, torch.device("cpu"))
    assert torch.equal(out, t)
    meta = to_device(t, torch.device("meta"))
    assert meta.device.type == "meta" and meta.shape == t.shape


def test_models_copy_to_the_device_only_through_to_device():
    """A ``.to(device, non_blocking=True)`` of a pageable host tensor can make the host wait for the CUDA stream;
    the models' host-to-device copies go through :func:`to_device`, which stages them in pinned memory."""
    pkg = Path(speech_ssl.__file__).parent
    offenders = [
        f"{path.relative_to(pkg.parent)}:{n}"
        for path in sorted((pkg / "models").glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"non_blocking\s*=\s*True", line)
    ]
    assert offenders == [], offenders
