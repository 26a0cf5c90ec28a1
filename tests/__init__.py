"""The test suite; its folders mirror the package (tests/models for speech_ssl/models, tests/data_prep for
data_prep, tests/recipes for recipes/). ``REPO`` is the checkout's root."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
