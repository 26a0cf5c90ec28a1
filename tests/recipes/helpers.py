"""Shared helpers of the recipe tests (tests/test_recipe_{librispeech,commonvoice,babel}.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import REPO


def run_recipe(run: Path, args: list[str], env_extra: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """``bash RUN ARGS`` in tiny mode (TINY=1, one thread, two jobs, this interpreter), from ``/`` so that no
    path may depend on the working directory; ``env_extra`` overrides the environment."""
    env = dict(os.environ, OMP_NUM_THREADS="1", SPEECH_SSL_NO_BAR="1", SPEECH_SSL_PYTHON=sys.executable,
               TINY="1", NJ="2", THREADS="1")
    env.update(env_extra)
    return subprocess.run(["bash", str(run), *args], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd="/")


def check_syntax_and_unknown_option(run: Path, exp: Path) -> None:
    """``bash -n`` accepts the script and recipes/lib.sh, and an unknown ``--knob`` exits 2 naming it."""
    assert subprocess.run(["bash", "-n", str(run)]).returncode == 0
    assert subprocess.run(["bash", "-n", str(REPO / "recipes" / "lib.sh")]).returncode == 0
    p = run_recipe(run, ["--no-such-knob", "1"], {"EXP": str(exp)})
    assert p.returncode == 2 and "unknown option --no-such-knob" in p.stderr
