"""The CLI's thread policy: free cores unless told (speech_ssl.cli.threads)."""

from __future__ import annotations

import pytest

from speech_ssl.cli.threads import cgroup_cpu_limit, pick_threads


@pytest.mark.parametrize("cores, load, want", [
    (2, 0.0, 2),  # idle
    (2, 0.3, 2),  # a little noise still rounds to both cores
    (2, 1.0, 1),  # another process holds a core
    (2, 1.9, 1),  # never below 1
    (2, 7.5, 1),
    (16, 3.2, 13),
    (4, -1.0, 4),  # never above the cores
])
def test_free_cores(cores, load, want):
    n, why = pick_threads(cores, load, {})
    assert n == want and f"{cores} usable cores" in why and f"load {load:.2f}" in why


def test_local_processes_share_the_free_cores():
    assert pick_threads(16, 0.0, {"LOCAL_WORLD_SIZE": "4"})[0] == 4
    assert pick_threads(2, 0.0, {"LOCAL_WORLD_SIZE": "4"})[0] == 1
    assert "4 local processes" in pick_threads(16, 0.0, {"LOCAL_WORLD_SIZE": "4"})[1]


def test_flag_then_environment_override_the_load():
    env = {"SPEECH_SSL_THREADS": "3", "OMP_NUM_THREADS": "5"}
    assert pick_threads(2, 1.9, env, requested=6) == (6, "--threads")
    assert pick_threads(2, 1.9, env) == (3, "SPEECH_SSL_THREADS=3")
    assert pick_threads(2, 1.9, {"OMP_NUM_THREADS": "5"}) == (5, "OMP_NUM_THREADS=5")
    assert pick_threads(2, 0.0, {"OMP_NUM_THREADS": " "})[0] == 2  # empty = unset


@pytest.mark.parametrize("env, requested, name", [({"OMP_NUM_THREADS": "0"}, None, "OMP_NUM_THREADS"),
                                                  ({"SPEECH_SSL_THREADS": "two"}, None, "SPEECH_SSL_THREADS"),
                                                  ({}, 0, "--threads")])
def test_bad_values_name_their_source(env, requested, name):
    with pytest.raises(ValueError, match=name):
        pick_threads(2, 0.0, env, requested)


def test_cgroup_quota(tmp_path):
    f = tmp_path / "cpu.max"
    f.write_text("max 100000\n")
    assert cgroup_cpu_limit(f) is None
    f.write_text("150000 100000\n")
    assert cgroup_cpu_limit(f) == 1.5
    assert cgroup_cpu_limit(tmp_path / "missing") is None


def test_cli_says_what_it_picked(capsys, tmp_path):
    import torch

    from speech_ssl.cli import main

    n = torch.get_num_threads()
    try:
        main(["--threads", "1", "init", str(tmp_path / "missing"), str(tmp_path / "m")])  # fails after the line
        assert "threads: 1 (--threads; set with --threads N or SPEECH_SSL_THREADS)" in capsys.readouterr().err
        assert torch.get_num_threads() == 1
        assert main(["--threads", "0", "init", str(tmp_path / "missing"), str(tmp_path / "m2")]) == 2
        assert "--threads='0' must be a positive integer" in capsys.readouterr().err
    finally:
        torch.set_num_threads(n)
