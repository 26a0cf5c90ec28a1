import os

import pytest
import torch

# Two cores: keep intra-op threads small so parallel test processes do not thrash.
torch.set_num_threads(int(os.environ.get("SPEECH_SSL_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
