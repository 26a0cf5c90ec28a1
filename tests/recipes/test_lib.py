"""recipes/lib.sh's launch: torchrun for several GPUs, nodes (static MASTER or a c10d RDZV_ENDPOINT) and
elastic restarts; update_freq from the whole job's process count; the SLURM template passes bash -n."""

import subprocess

from tests import REPO


def _lib(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f". {REPO / 'recipes' / 'lib.sh'}; py=echo; {script}"],
                          capture_output=True, text=True, timeout=30)


def test_one_process_runs_the_command_directly():
    r = _lib("ngpu=0; train pretrain c.yaml a=1")
    assert r.stdout.split() == ["-m", "speech_ssl", "pretrain", "c.yaml", "a=1"]


def test_static_two_node_launch():
    r = _lib("ngpu=8; nnodes=2; node_rank=1; master=node0:29400; train pretrain c.yaml")
    assert r.stdout.split() == ["-m", "torch.distributed.run", "--nproc-per-node", "8", "--max-restarts", "0",
                                "--nnodes", "2", "--node-rank", "1", "--master-addr", "node0", "--master-port",
                                "29400", "-m", "speech_ssl", "pretrain", "c.yaml"]


def test_elastic_launch_and_world_size():
    r = _lib("ngpu=4; nnodes=2; rdzv_endpoint=node0:29500; rdzv_id=77; max_restarts=3; train finetune c.yaml; world")
    out = r.stdout.split()
    assert out[:4] == ["-m", "torch.distributed.run", "--nproc-per-node", "4"]
    assert " ".join(out[4:16]) == ("--max-restarts 3 --nnodes 2 --rdzv-backend c10d --rdzv-endpoint node0:29500 "
                                   "--rdzv-id 77 -m speech_ssl")
    assert out[-1] == "8"  # NNODES x NGPU processes: what update_freq is computed for
    cpu = _lib("ngpu=0; nnodes=2; world")
    assert cpu.stdout.split() == ["2"]


def test_several_nodes_without_a_rendezvous_is_an_error():
    r = _lib("ngpu=1; nnodes=2; train pretrain c.yaml")
    assert r.returncode == 2 and "NNODES=2 needs MASTER=HOST:PORT (or RDZV_ENDPOINT)" in r.stderr


def test_slurm_template_syntax():
    assert subprocess.run(["bash", "-n", str(REPO / "recipes" / "slurm.sbatch")]).returncode == 0


def test_run_options_are_checked_before_any_stage(tmp_path):
    """A stage that is not a number, --stop-stage before --stage, TINY / DEVICE outside their values: exit 2 with
    the knob named (they ran nothing and exited 0 before); --help prints the run.sh's header."""
    run = str(REPO / "recipes" / "synth" / "run.sh")
    env = {"PATH": "/usr/bin:/bin", "EXP": str(tmp_path / "exp"), "SPEECH_SSL_PYTHON": "false"}
    for args, extra, named in ((["--stage", "abc"], {}, "--stage is a stage number, not 'abc'"),
                               (["--stage", "5", "--stop-stage", "2"], {}, "--stop-stage 2 is before --stage 5"),
                               ([], {"TINY": "yes"}, "TINY is 0 or 1, not 'yes'"),
                               ([], {"DEVICE": "gpu"}, "DEVICE is auto, cpu or cuda, not 'gpu'")):
        r = subprocess.run(["bash", run, *args], capture_output=True, text=True, env={**env, **extra}, timeout=30)
        assert r.returncode == 2 and named in r.stderr, (args, extra, r.stderr)
    assert not (tmp_path / "exp").exists()
    r = subprocess.run(["bash", run, "--help"], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0 and "--stop-stage" in r.stdout and r.stdout.startswith("recipes/synth")
