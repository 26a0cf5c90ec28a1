"""Acoustic post-processing of the synthetic corpus (data_prep.synth.acoustics)."""

import numpy as np


def test_telephone_band_and_noise_levels():
    from data_prep.synth.acoustics import AcousticsConfig, colored_noise, process, rms_db, telephone_band

    r = 22050
    t = np.arange(r) / r
    gains = {}
    for f in (100, 1000, 3000, 5000):
        y = telephone_band(np.sin(2 * np.pi * f * t).astype(np.float32), r)
        gains[f] = float(np.sqrt(np.mean(y[2000:-2000] ** 2) * 2))
    assert gains[100] < 0.01 and gains[5000] < 0.01 and gains[1000] > 0.99 and gains[3000] > 0.99
    rng = np.random.default_rng(0)
    assert abs(rms_db(colored_noise(10000, rng, 1.0))) < 0.01
    speech = np.sin(2 * np.pi * 200 * t).astype(np.float32) * 0.3
    cfg = AcousticsConfig(augment_prob=1.0, reverb_prob=0.0, snr_db=(10.0, 10.0), level_db=(-20.0, -20.0),
                          noise_floor_db=-200.0)
    y, lead, info = process(speech, r, cfg, rng)
    assert info["snr_db"] == 10.0 and "rt60" not in info
    noise = y[:lead]  # the leading silence holds only the added noise
    assert abs(rms_db(y[lead: lead + r]) - (-20.0)) < 1.0
    assert abs(rms_db(noise) - (-30.0)) < 1.5


def test_reverb_lengthens_decay_and_f0_estimate():
    from data_prep.synth.acoustics import estimate_f0, fft_convolve, room_impulse

    r = 16000
    rng = np.random.default_rng(1)
    h = room_impulse(r, 0.4, rng)
    assert h[0] == 1.0 and len(h) == int(0.4 * r)
    energy = np.cumsum(h[::-1] ** 2)[::-1]
    t60 = np.argmax(10 * np.log10(energy / energy[0]) < -50) / r  # most of the decay within rt60
    assert 0.15 < t60 < 0.4
    click = np.zeros(r, np.float32)
    click[100] = 1
    assert np.count_nonzero(np.abs(fft_convolve(click, h)) > 1e-3) > 1000
    t = np.arange(r) / r
    assert abs(estimate_f0(np.sin(2 * np.pi * 150 * t), r) - 150) < 3
    assert estimate_f0(np.zeros(r), r) == 0.0
