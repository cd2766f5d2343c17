"""The spectra-cache kernels that align iterates with: forward_stack, register_spectra,
accumulate_spectra and the fused register_accumulate_spectra, against numpy and against the
image-based kernels, on fresh random inputs."""

import numpy as np
import pytest

import cryocore
from cryocore import _core


def _stack(rng, n, shape, snr=0.5):
    ref = cryocore.make_template(shape[0]) if shape[0] == shape[1] else rng.standard_normal(shape)
    ref = np.asarray(ref, np.float64)
    shifts = rng.uniform(-4, 4, (n, 2))
    imgs = cryocore.shift(np.broadcast_to(ref, (n,) + shape), shifts)
    imgs = imgs + rng.standard_normal(imgs.shape) * np.sqrt(ref.var() / snr)
    return ref.astype(np.float32), imgs.astype(np.float32), shifts


def _moved_back_band(spectra, nx, shifts, weights, band):
    n, ny, nxh = spectra.shape
    fy = np.fft.fftfreq(ny)[:, None]
    fx = (np.arange(nxh) / nx)[None, :]
    out = np.zeros((ny, nxh), np.complex128)
    for F, (dy, dx), w in zip(spectra.astype(np.complex128), shifts, weights):
        # Nyquist terms of even sizes are real cosines (the convention of cryocore.shift)
        ey = np.exp(2j * np.pi * fy * dy)
        ex = np.exp(2j * np.pi * fx * dx)
        if ny % 2 == 0:
            ey[ny // 2] = np.cos(np.pi * dy)
        if nx % 2 == 0:
            ex[0, nx // 2] = np.cos(np.pi * dx)
        out += w * F * ey * ex
    if band < 0.5:
        keep = (np.abs(np.fft.fftfreq(ny) * ny)[:, None] <= np.floor(band * ny)) & (
            np.arange(nxh)[None, :] <= np.floor(band * nx))
        out = np.where(keep, out, 0)
    return out


@pytest.mark.parametrize("shape", [(64, 64), (65, 65), (48, 80)])
def test_forward_stack_is_numpy_rfft2(rng, shape):
    imgs = rng.standard_normal((5,) + shape).astype(np.float32)
    sp = _core.forward_stack(imgs, threads=2)
    np.testing.assert_allclose(sp, np.fft.rfft2(imgs.astype(np.float64)), rtol=0, atol=1e-3)
    idx = np.array([4, 1])
    np.testing.assert_allclose(_core.forward_stack(imgs, index=idx), sp[idx], rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(64, 64), (65, 65), (48, 80)])
@pytest.mark.parametrize("lowpass", [None, 0.2])
def test_register_spectra_equals_register_stack(rng, shape, lowpass):
    ref, imgs, _ = _stack(rng, 40, shape)
    sp = _core.forward_stack(imgs, threads=2)
    a = _core.register_stack(ref[None], imgs, threads=2, settings=_core.SearchSettings(lowpass=lowpass))
    b = _core.register_spectra(ref[None], sp, shape[1], threads=2, settings=_core.SearchSettings(lowpass=lowpass))
    # (register_stack may use a pruned forward FFT: float rounding differs)
    np.testing.assert_allclose(b[0], a[0], atol=1e-4)
    np.testing.assert_allclose(b[1], a[1], atol=1e-5)


@pytest.mark.parametrize("shape", [(64, 64), (65, 65), (48, 80)])
@pytest.mark.parametrize("band", [0.5, 0.3, 0.12])
def test_accumulate_spectra_matches_numpy(rng, shape, band):
    imgs = rng.standard_normal((70,) + shape).astype(np.float32)
    sp = _core.forward_stack(imgs)
    shifts = rng.uniform(-6, 6, (70, 2))
    weights = rng.uniform(0, 2, 70) * (rng.random(70) < 0.8)
    got = np.zeros((shape[0], shape[1] // 2 + 1), np.complex128)
    _core.accumulate_spectra(sp, shape[1], shifts, weights, got, threads=3, band=band)
    want = _moved_back_band(sp, shape[1], shifts, weights, band)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("shape", [(64, 64), (65, 65), (48, 80)])
def test_register_accumulate_equals_register_then_accumulate(rng, shape):
    ref, imgs, true = _stack(rng, 90, shape)
    nx = shape[1]
    sp = _core.forward_stack(imgs, threads=2)
    groups = rng.integers(-1, 3, 90).astype(np.int32)  # -1: not added
    sums = np.zeros((3, shape[0], nx // 2 + 1), np.complex128)
    s, c, b = _core.register_accumulate_spectra(ref[None], sp, nx, groups, sums, band=0.3,
                                                threads=2, settings=_core.SearchSettings(lowpass=0.25))
    s0, c0, b0 = _core.register_spectra(ref[None], sp, nx, threads=2, settings=_core.SearchSettings(lowpass=0.25))
    assert np.array_equal(s, s0) and np.array_equal(c, c0) and np.array_equal(b, b0)
    assert np.median(np.hypot(*(s - true).T)) < 0.5  # the shifts are the right ones
    for g in range(3):
        want = _moved_back_band(sp, nx, s, (groups == g).astype(float), 0.3)
        assert np.abs(sums[g] - want).max() <= 1e-5 * np.abs(want).max()
    # full band: the real-space mean of a group is the mean of its images moved back by their
    # shifts (numpy Fourier shift of each image)
    full = np.zeros((3, shape[0], nx // 2 + 1), np.complex128)
    _core.register_accumulate_spectra(ref[None], sp, nx, groups, full, band=0.5, settings=_core.SearchSettings(lowpass=0.25))
    g0 = groups == 0
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    moved = [np.fft.ifft2(np.fft.fft2(im) * np.exp(2j * np.pi * (fy * dy + fx * dx))).real
             for im, (dy, dx) in zip(imgs[g0].astype(np.float64), s[g0])]
    mean = np.fft.irfft2(full[0], s=shape) / g0.sum()
    # (odd/even Nyquist conventions differ only in the Nyquist terms: compare low-passed)
    lp = lambda a: np.fft.irfft2(np.fft.rfft2(a) * (np.hypot(fy[:, :1], np.fft.rfftfreq(nx)) < 0.45), s=shape)
    np.testing.assert_allclose(lp(mean), lp(np.mean(moved, axis=0)), atol=1e-4 * np.abs(mean).max())


def test_register_accumulate_adds_in_place_and_does_not_depend_on_threads(rng):
    ref, imgs, _ = _stack(rng, 150, (64, 64))
    sp = _core.forward_stack(imgs)
    groups = (np.arange(150) % 2).astype(np.int32)
    outs = []
    for threads in (1, 2, 3, 7):
        sums = np.ones((2, 64, 33), np.complex128)
        r = _core.register_accumulate_spectra(ref[None], sp, 64, groups, sums, band=0.25,
                                              threads=threads, settings=_core.SearchSettings(lowpass=0.2))
        outs.append((r[0], r[1], sums))
    for o in outs[1:]:
        assert np.array_equal(o[0], outs[0][0]) and np.array_equal(o[1], outs[0][1])
        assert np.array_equal(o[2], outs[0][2])
    # outside the band the sums kept their value (added to in place)
    assert np.all(outs[0][2][:, 20:-20, :] == 1)


@pytest.mark.parametrize(
    "kw, match",
    [(dict(groups=np.zeros(7, np.int32)), "groups"),
     (dict(groups=np.full(10, 2, np.int32)), "out of range"),
     (dict(sums=np.zeros((2, 32, 33), np.complex128)), "sums"),
     (dict(sums=np.zeros((2, 32, 17), np.complex64)), "sums|incompatible"),
     (dict(band=0.0), "band")],
)
def test_register_accumulate_bad_inputs(rng, kw, match):
    ref, imgs, _ = _stack(rng, 10, (32, 32))
    args = dict(groups=np.zeros(10, np.int32), sums=np.zeros((2, 32, 17), np.complex128), band=0.3)
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        _core.register_accumulate_spectra(ref[None], _core.forward_stack(imgs), 32, args["groups"],
                                          args["sums"], band=args["band"])


@pytest.mark.parametrize("bad", [np.float32, "strided"])
def test_in_place_outputs_are_never_silently_copied(rng, bad):
    # a converted copy would take the sums and be thrown away: refuse instead
    imgs = rng.standard_normal((3, 16, 16)).astype(np.float32)
    sp = _core.forward_stack(imgs)
    if bad == "strided":
        real, cplx = np.zeros((16, 32))[:, ::2], np.zeros((16, 18), np.complex128)[:, ::2]
    else:
        real, cplx = np.zeros((16, 16), bad), np.zeros((16, 9), np.complex64)
    with pytest.raises(TypeError):
        _core.accumulate(imgs, None, None, real, None)
    with pytest.raises(TypeError):
        _core.accumulate(imgs, None, None, np.zeros((16, 16)), real)
    with pytest.raises(TypeError):
        _core.accumulate_spectra(sp, 16, None, None, cplx)
    with pytest.raises(TypeError):
        _core.register_accumulate_spectra(imgs[:1], sp, 16, np.zeros(3, np.int32), cplx[None].copy()
                                          if bad != "strided" else np.zeros((1, 16, 18), np.complex128)[:, :, ::2])


def test_local_search_from_a_prior_finds_the_same_peak(rng):
    ref, imgs, true = _stack(rng, 80, (64, 64))
    sp = _core.forward_stack(imgs)
    groups = np.zeros(80, np.int32)
    sums_g = np.zeros((1, 64, 33), np.complex128)
    s_g, c_g, _ = _core.register_accumulate_spectra(ref[None], sp, 64, groups, sums_g, band=0.3, settings=_core.SearchSettings(lowpass=0.25))
    # a prior up to a pixel off: the local search climbs to the same peak
    prior = s_g + rng.uniform(-1.0, 1.0, s_g.shape)
    prior[::7] = np.nan  # no prior: full search
    sums_l = np.zeros_like(sums_g)
    s_l, c_l, _ = _core.register_accumulate_spectra(ref[None], sp, 64, groups, sums_l, band=0.3,
                                                    prior=prior, settings=_core.SearchSettings(lowpass=0.25))
    np.testing.assert_allclose(s_l, s_g, atol=0.02)
    np.testing.assert_allclose(c_l, c_g, atol=1e-4)
    assert np.abs(sums_l - sums_g).max() <= 1e-3 * np.abs(sums_g).max()
    # a prior far from the peak stays local: it does not jump to the global maximum
    far = s_g + 6.0
    s_f, c_f, _ = _core.register_accumulate_spectra(ref[None], sp, 64, groups, np.zeros_like(sums_g), band=0.3,
                                                    prior=far, settings=_core.SearchSettings(lowpass=0.25))
    assert np.abs(s_f - far).max() <= 2.6  # 8 steps of 1/4 px, 8 of 1/20 px, rounding, per axis
    assert np.median(c_f) < np.median(c_g)
    with pytest.raises(ValueError, match="prior"):
        _core.register_accumulate_spectra(ref[None], sp, 64, groups, np.zeros_like(sums_g), prior=prior[:5])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (17, 5), (31, 31)])
def test_forward_stack_reports_a_non_finite_pixel(bad, where):
    imgs = np.random.default_rng(3).standard_normal((4, 32, 32)).astype(np.float32)
    imgs[2][where] = bad
    before = imgs.copy()
    with pytest.raises(ValueError, match="image 2 contains NaN or infinity"):
        _core.forward_stack(imgs, threads=2)
    with pytest.raises(ValueError, match="image 2 contains NaN or infinity"):
        _core.forward_stack(imgs, index=np.array([0, 2]))
    assert np.array_equal(imgs, before, equal_nan=True)
    np.testing.assert_allclose(_core.forward_stack(imgs, index=np.array([3, 1])),
                               np.fft.rfft2(imgs[[3, 1]].astype(np.float64)), atol=1e-3)


# --------------------------------------------------------------------------- cropped cache
def _crop_of(whole, ky, kx):
    """numpy: rows 0..ky then -ky..-1, columns 0..kx of whole half spectra."""
    return np.concatenate([whole[:, : ky + 1, : kx + 1], whole[:, whole.shape[1] - ky :, : kx + 1]], axis=1)


@pytest.mark.parametrize("shape,crop", [((64, 64), (20, 20)), ((65, 65), (31, 11)), ((48, 80), (9, 30))])
def test_forward_stack_crop_keeps_the_low_frequencies(rng, shape, crop):
    imgs = rng.standard_normal((7,) + shape).astype(np.float32)
    whole = _core.forward_stack(imgs, threads=2)
    got = _core.forward_stack(imgs, threads=3, crop=crop)
    assert got.shape == (7, 2 * crop[0] + 1, crop[1] + 1)
    assert np.array_equal(got, _crop_of(whole, *crop))
    np.testing.assert_allclose(got, _crop_of(np.fft.rfft2(imgs.astype(np.float64)), *crop), rtol=0, atol=1e-3)
    out = np.empty_like(got)
    idx = np.array([6, 0, 3])
    _core.forward_stack(imgs, index=idx, out=out[:3], crop=crop)
    assert np.array_equal(out[:3], got[idx])


@pytest.mark.parametrize("shape", [(64, 64), (65, 65), (48, 80)])
def test_cropped_cache_gives_the_whole_caches_results(rng, shape):
    """Every kernel reading a crop that holds what it reads gives bit-identical results."""
    ref, imgs, _ = _stack(rng, 60, shape)
    ny, nx = shape
    lowpass, band = 0.2, 0.3
    ky, kx = _core.search_extent(ny, nx, band=band, settings=_core.SearchSettings(lowpass=lowpass))
    assert (ky, kx) == (max(ky, int(band * ny)), max(kx, int(band * nx)))
    assert _core.search_extent(ny, nx) == (ny // 2, nx // 2)  # no low-pass: everything
    whole = _core.forward_stack(imgs, threads=2)
    crop = _core.forward_stack(imgs, threads=2, crop=(ky, kx))
    a = _core.register_spectra(ref[None], whole, nx, threads=2, settings=_core.SearchSettings(lowpass=lowpass))
    b = _core.register_spectra(ref[None], crop, nx, threads=3, settings=_core.SearchSettings(lowpass=lowpass))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    groups = rng.integers(-1, 2, 60).astype(np.int32)
    prior = np.where(rng.random((60, 1)) < 0.5, a[0], np.nan)
    sw = np.zeros((2, ny, nx // 2 + 1), np.complex128)
    sc = sw.copy()
    a2 = _core.register_accumulate_spectra(ref[None], whole, nx, groups, sw, band=band, prior=prior,
                                           threads=2, settings=_core.SearchSettings(lowpass=lowpass))
    b2 = _core.register_accumulate_spectra(ref[None], crop, nx, groups, sc, band=band, prior=prior,
                                           threads=3, settings=_core.SearchSettings(lowpass=lowpass))
    assert all(np.array_equal(x, y) for x, y in zip(a2, b2)) and np.array_equal(sw, sc)
    w = rng.uniform(0, 2, 60)
    s1 = np.zeros((ny, nx // 2 + 1), np.complex128)
    s2 = s1.copy()
    _core.accumulate_spectra(whole, nx, a[0], w, s1, threads=2, band=band)
    _core.accumulate_spectra(crop, nx, a[0], w, s2, threads=1, band=band)
    assert np.array_equal(s1, s2)
    want = _moved_back_band(whole, nx, a[0], w, band)
    assert np.abs(s2 - want).max() <= 1e-5 * np.abs(want).max()


def test_cropped_cache_refuses_what_it_does_not_hold(rng):
    ref, imgs, _ = _stack(rng, 5, (64, 64))
    crop = _core.forward_stack(imgs, crop=(16, 16))
    s = np.zeros((64, 33), np.complex128)
    sums = np.zeros((1, 64, 33), np.complex128)
    g = np.zeros(5, np.int32)
    with pytest.raises(ValueError, match="hold only"):
        _core.register_spectra(ref[None], crop, 64, settings=_core.SearchSettings(lowpass=0.3))
    with pytest.raises(ValueError, match="hold only"):
        _core.register_spectra(ref[None], crop, 64)  # no low-pass: the whole spectrum
    with pytest.raises(ValueError, match="the band .* hold only"):
        _core.register_accumulate_spectra(ref[None], crop, 64, g, sums, band=0.4, settings=_core.SearchSettings(lowpass=0.1))
    with pytest.raises(ValueError, match="the band .* hold only"):
        _core.accumulate_spectra(crop, 64, None, None, s, band=0.5)
    with pytest.raises(ValueError, match=r"\(n, 2\*ky\+1, kx\+1\)"):
        _core.register_spectra(ref[None], crop[:, :-1], 64, settings=_core.SearchSettings(lowpass=0.1))  # even number of rows
    with pytest.raises(ValueError, match="fewer than all"):
        _core.forward_stack(imgs, crop=(32, 8))
    with pytest.raises(ValueError, match="out must"):
        _core.forward_stack(imgs, crop=(8, 8), out=np.empty((5, 64, 33), np.complex64))


@pytest.mark.parametrize("shape", [(64, 64), (65, 65), (48, 80)])
@pytest.mark.parametrize("band", [0.5, 0.2])
def test_accumulate_images_spectra_is_forward_then_accumulate(rng, shape, band):
    imgs = rng.standard_normal((45,) + shape).astype(np.float32)
    shifts = rng.uniform(-6, 6, (45, 2))
    weights = rng.uniform(0, 2, 45) * (rng.random(45) < 0.8)
    sp = _core.forward_stack(imgs, threads=2)
    want = np.zeros((shape[0], shape[1] // 2 + 1), np.complex128)
    _core.accumulate_spectra(sp, shape[1], shifts, weights, want, threads=2, band=band)
    got = np.zeros_like(want)
    _core.accumulate_images_spectra(imgs, shifts, weights, got, threads=3, band=band)
    assert np.array_equal(got, want)
    ref = _moved_back_band(np.fft.rfft2(imgs.astype(np.float64)), shape[1], shifts, weights, band)
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
    idx = rng.permutation(45)[:20]
    sub = np.zeros_like(want)
    _core.accumulate_images_spectra(imgs[idx], shifts[:20], weights[:20], sub, band=band)
    via = np.zeros_like(want)
    _core.accumulate_images_spectra(imgs, shifts[:20], weights[:20], via, threads=2, band=band, index=idx)
    assert np.array_equal(via, sub)
    bad = imgs.copy()
    bad[7, 3, 2] = np.nan
    with pytest.raises(ValueError, match="image 7"):
        _core.accumulate_images_spectra(bad, shifts, weights, got)
    with pytest.raises(ValueError, match="out of range"):
        _core.accumulate_images_spectra(imgs, shifts[:2], None, got, index=np.array([0, 45]))
