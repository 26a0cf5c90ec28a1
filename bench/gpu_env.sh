# Sourced by the GPU scripts (bench/gpu_session.sh, bench/gpu_lease_synth.sh): installs the wheels carried in .whl/
# (bench/gpu_wheels.sh) into /tmp/site and puts it and this checkout on PYTHONPATH; unbuffered output, no bars.
# Once per session: gpu_lease_synth.sh calls gpu_session.sh, which finds GPU_ENV_DONE set.
[ -n "${GPU_ENV_DONE:-}" ] && return 0
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 SPEECH_SSL_NO_BAR=1 GPU_ENV_DONE=1
