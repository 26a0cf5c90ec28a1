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


def test_speed_perturbation_scales_duration_and_pitch():
    from data_prep.synth.acoustics import estimate_f0, speed_perturb

    r = 16000
    x = np.sin(2 * np.pi * 150 * np.arange(2 * r) / r).astype(np.float32)
    assert speed_perturb(x, 1.0) is x
    fast = speed_perturb(x, 1.1)
    assert abs(fast.size - 2 * r / 1.1) <= 2
    assert abs(estimate_f0(fast, r) - 165) < 4  # tempo and pitch together, as sox 'speed'
    assert abs(speed_perturb(x, 0.9).size - 2 * r / 0.9) <= 2


def test_babble_is_unit_rms_mixture_of_the_talkers():
    from data_prep.synth.acoustics import AcousticsConfig, babble, process, rms_db

    rng = np.random.default_rng(0)
    r = 8000
    talkers = [np.sin(2 * np.pi * f * np.arange(r // 2) / r).astype(np.float32) * a
               for f, a in ((300, 0.1), (700, 0.5), (1100, 0.01))]
    y = babble(3 * r, talkers, rng)
    assert y.shape == (3 * r,) and abs(rms_db(y)) < 0.01
    spec = np.abs(np.fft.rfft(y))
    bins = [int(f * 3) for f in (300, 700, 1100)]  # 3 s: 1/3 Hz per bin
    assert all(spec[b - 3: b + 4].max() > 0.2 * spec.max() for b in bins)  # each talker is in, at equal level
    cfg = AcousticsConfig(augment_prob=1.0, babble_prob=1.0, reverb_prob=0.0, babble_talkers=(2, 2))
    _, _, info = process(np.ones(r, np.float32) * 0.1, r, cfg, rng, talkers=talkers)
    assert info["noise"] == "babble2"
    _, _, info = process(np.ones(r, np.float32) * 0.1, r, cfg, rng, talkers=[])
    assert info["noise"] in ("white", "pink", "brown")  # no other speakers yet: coloured noise


def test_opus_round_trip_is_low_bitrate_and_lossy():
    from data_prep.synth.acoustics import opus_round_trip

    r = 48000
    rng = np.random.default_rng(0)
    t = np.arange(2 * r) / r
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    y, kbps = opus_round_trip(x, r, 0.99)
    assert y.shape == x.shape and y.dtype == np.float32
    assert 4 < kbps < 20
    err = np.mean((y - x) ** 2) / np.mean(x**2)
    assert 1e-4 < err < 1.0  # changed by the codec, still the same signal
    _, kbps_hi = opus_round_trip(x, r, 0.5)
    assert kbps_hi > 5 * kbps
