#!/usr/bin/env bash
# Wheels the GPU machine's Python (3.12, x86-64) lacks for bench/gpu_session.sh and bench/gpu_lease_synth.sh:
# soundfile (our audio reader, libsndfile inside the wheel) and cffi / pycparser under it; soxr (resampling),
# espeakng-loader (eSpeak NG for the embedded corpus), jiwer / rapidfuzz (scoring, imported by the CTC task).
# Into .whl/ (git-ignored, ~14 MB), carried with `carry: [".whl"]`. The working tree and the carried paths travel
# within 64 MiB together: move a large untracked or tracked-but-unneeded folder aside for the call if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo /.whl/ >> .git/info/exclude; }
for w in soundfile==0.13.1 cffi==2.0.0 pycparser==2.23 soxr==1.1.0 espeakng-loader==0.2.4 jiwer==4.0.0 rapidfuzz==3.14.3; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$w"
done
ls .whl
