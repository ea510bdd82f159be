"""Tests of mockzgrad.observation.psf: kernels, enclosed flux, headers, FITS, cube convolution.

Invariants every PSF kind must satisfy are written once in
:class:`PSFInvariants` and inherited by one class per kind.
"""

import numpy as np
import pytest
from astropy.io import fits
from photutils.aperture import CircularAperture
from scipy.signal import fftconvolve
from scipy.special import erf

from mockzgrad.errors import ConfigError, DataError
from mockzgrad.observation.psf import (
    FWHM_PER_SIGMA,
    KERNEL_ENCLOSED_FRACTION,
    EllipticalGaussianPSF,
    GaussianPSF,
    ImagePSF,
    MoffatPSF,
    PSF,
    convolve_cube,
    convolve_with_kernel,
    pad_width,
    psf_from_config,
    psf_from_header,
)
from mockzgrad.observation.psf.convolve import _channel_groups

PIX = 0.05  # arcsec


def _gaussian_image(n, sigma_pix, centre=None):
    """Pixel-integrated circular Gaussian of unit flux on an n x n grid (erf)."""
    c = (n - 1) / 2 if centre is None else centre
    edges = np.arange(n + 1) - 0.5 - c
    prof = 0.5 * np.diff(erf(edges / (np.sqrt(2) * sigma_pix)))
    return np.outer(prof, prof)


def _second_moments(image):
    """Flux-weighted <x^2>, <y^2> about the centroid, in pixels^2 (pixel centres)."""
    y, x = np.indices(image.shape, dtype=float)
    f = image.sum()
    xc, yc = (image * x).sum() / f, (image * y).sum() / f
    return (image * (x - xc) ** 2).sum() / f, (image * (y - yc) ** 2).sum() / f


def _point_cube(n_chan=2, ny=41, nx=45, pos=(20, 22)):
    cube = np.zeros((n_chan, ny, nx))
    cube[:, pos[0], pos[1]] = 1.0 + np.arange(n_chan)
    return cube


class PSFInvariants:
    """Checks that hold for every PSF model (subclasses provide ``psf``)."""

    psf: PSF

    def test_kernel_odd_centred_unit_sum(self):
        k = self.psf.kernel(PIX)
        assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert k.dtype == np.float64
        assert k.sum() == pytest.approx(1.0, abs=1e-14)
        h = k.shape[0] // 2
        assert np.unravel_index(np.argmax(k), k.shape) == (h, h)
        y, x = np.indices(k.shape)
        assert (k * x).sum() == pytest.approx(h, abs=1e-10)
        assert (k * y).sum() == pytest.approx(h, abs=1e-10)
        assert self.psf.half_width(PIX) == h

    def test_center_sampled_kernel(self):
        ki = self.psf.kernel(PIX)
        kc = self.psf.kernel(PIX, sampling="center")
        assert kc.shape == ki.shape
        assert kc.sum() == pytest.approx(1.0, abs=1e-14)
        h = kc.shape[0] // 2
        y, x = np.indices(kc.shape)
        assert (kc * x).sum() == pytest.approx(h, abs=1e-10)
        assert (kc * y).sum() == pytest.approx(h, abs=1e-10)
        # finely sampled, the two samplings converge
        fine = PIX / 10
        np.testing.assert_allclose(self.psf.kernel(fine, sampling="center"), self.psf.kernel(fine),
                                   atol=3e-3 * self.psf.kernel(fine).max())

    def test_kernel_holds_required_flux(self):
        # the square kernel reaches beyond the 99.9%-enclosed circle
        h = self.psf.half_width(PIX)
        if isinstance(self.psf, ImagePSF):  # the kernel covers the whole image
            assert (h + 0.5) * PIX >= 0.5 * max(self.psf.image.shape) * self.psf.pixel_scale
        else:
            assert (h + 0.5) * PIX >= self.psf.enclosed_radius(KERNEL_ENCLOSED_FRACTION) * (1 - 1e-9)

    def test_oversampled_kernel(self):
        k1 = self.psf.kernel(PIX)
        k3 = self.psf.kernel(PIX, oversample=3)
        assert k3.shape[0] > k1.shape[0]
        np.testing.assert_allclose(k3, self.psf.kernel(PIX / 3), rtol=1e-12, atol=1e-15)

    def test_header_round_trip(self):
        header = self.psf.to_header()
        assert all(len(key) <= 8 for key in header)
        rebuilt = psf_from_header(header, image=getattr(self.psf, "image", None))
        assert type(rebuilt) is type(self.psf)
        np.testing.assert_allclose(rebuilt.kernel(PIX), self.psf.kernel(PIX), rtol=1e-12, atol=1e-15)
        # also through a real FITS header
        fits_header = fits.Header()
        fits_header.update(header)
        again = type(self.psf).from_header(fits_header, image=getattr(self.psf, "image", None))
        np.testing.assert_allclose(again.kernel(PIX), self.psf.kernel(PIX), rtol=1e-12, atol=1e-15)

    def test_point_source_gives_the_kernel(self):
        k = self.psf.kernel(PIX)
        h = k.shape[0] // 2
        cube = _point_cube(ny=2 * h + 11, nx=2 * h + 15, pos=(h + 5, h + 7))
        out = convolve_cube(cube, self.psf, PIX)
        for c in range(2):
            expected = np.zeros(cube.shape[1:])
            expected[5:5 + 2 * h + 1, 7:7 + 2 * h + 1] = (c + 1) * k
            np.testing.assert_allclose(out[c], expected, atol=1e-15 * (c + 1))

    def test_flux_conserved_for_interior_source(self):
        rng = np.random.default_rng(3)
        h = self.psf.half_width(PIX)
        cube = np.zeros((3, 2 * h + 30, 2 * h + 24))
        cube[:, h + 5:h + 25, h + 4:h + 20] = rng.uniform(0, 1, size=(3, 20, 16))
        out = convolve_cube(cube, self.psf, PIX)
        np.testing.assert_allclose(out.sum(axis=(1, 2)), cube.sum(axis=(1, 2)), rtol=1e-10)

    def test_no_wrap_around(self):
        h = self.psf.half_width(PIX)
        n = 2 * h + 20
        cube = np.zeros((1, n, n))
        cube[0, 0, 0] = 1.0  # corner source: part of its light leaves the field
        out = convolve_cube(cube, self.psf, PIX)
        assert np.all(np.abs(out[0, h + 1:, :]) < 1e-15)
        assert np.all(np.abs(out[0, :, h + 1:]) < 1e-15)
        assert out.sum() < 1.0
        # with periodic boundaries the light does reappear on the far side
        wrapped = convolve_cube(cube, self.psf, PIX, pad=False)
        assert wrapped.sum() == pytest.approx(1.0, abs=1e-12)
        assert wrapped[0, -1, -1] > 1e-6

    def test_matches_scipy_fftconvolve(self):
        rng = np.random.default_rng(7)
        cube = rng.normal(size=(4, 37, 52))
        k = self.psf.kernel(PIX)
        ours = convolve_cube(cube, self.psf, PIX, workers=2)
        for c in range(cube.shape[0]):
            ref = fftconvolve(cube[c], k, mode="same")
            np.testing.assert_allclose(ours[c], ref, atol=1e-12)

    def test_two_dimensional_input(self):
        image = _point_cube(n_chan=1)[0]
        out = convolve_cube(image, self.psf, PIX)
        assert out.shape == image.shape
        np.testing.assert_array_equal(out, convolve_cube(image[None], self.psf, PIX)[0])


class TestGaussian(PSFInvariants):
    psf = GaussianPSF(0.15)

    def test_kernel_is_erf_integral(self):
        k = GaussianPSF(0.1).kernel(PIX)
        sigma_pix = 0.1 / FWHM_PER_SIGMA / PIX
        expected = _gaussian_image(k.shape[0], sigma_pix)
        np.testing.assert_allclose(k, expected / expected.sum(), rtol=1e-12)

    def test_fwhm_adds_in_quadrature(self):
        # Discrete convolution adds second moments exactly: m_out = m_in + m_kernel.
        # The pixel-integrated kernel of sigma_psf has m = sigma_psf^2 + 1/12 pix^2
        # (Sheppard's correction for pixel-centre moments of a binned Gaussian),
        # less ~0.1% because the kernel is cut where 99.9% of the flux is enclosed;
        # so sigma_out^2 = sigma_src^2 + sigma_psf^2 after removing pixel terms.
        sigma_src, fwhm = 3.0, 0.25  # pixels, arcsec
        sigma_psf = fwhm / FWHM_PER_SIGMA / PIX
        src = _gaussian_image(81, sigma_src)
        out = convolve_cube(src[None], GaussianPSF(fwhm), PIX)[0]
        k_mom = _second_moments(GaussianPSF(fwhm).kernel(PIX))
        for m_out, m_in, m_k in zip(_second_moments(out), _second_moments(src), k_mom):
            assert m_out == pytest.approx(m_in + m_k, rel=1e-10)
            assert m_k == pytest.approx(sigma_psf**2 + 1 / 12, rel=2e-3)
            assert m_in == pytest.approx(sigma_src**2 + 1 / 12, rel=1e-6)
            sigma_out = np.sqrt(m_out - 2 / 12)
            assert sigma_out == pytest.approx(np.hypot(sigma_src, sigma_psf), rel=1e-3)

    def test_center_sampling_adds_psf_variance_only(self):
        # For an image that already holds pixel-integrated flux, the centre-sampled
        # kernel adds exactly its own second moment, sigma_psf^2 (less ~0.1% from
        # the 99.9% truncation): the pixel response is not applied twice.
        sigma_src, fwhm = 3.0, 0.25
        sigma_psf = fwhm / FWHM_PER_SIGMA / PIX
        src = _gaussian_image(81, sigma_src)
        out = convolve_cube(src, GaussianPSF(fwhm), PIX, sampling="center")
        for m_out, m_in in zip(_second_moments(out), _second_moments(src)):
            assert m_out - m_in == pytest.approx(sigma_psf**2, rel=2e-3)
            assert np.sqrt(m_out - 1 / 12) == pytest.approx(np.hypot(sigma_src, sigma_psf), rel=1e-3)

    def test_convolve_with_kernel(self):
        rng = np.random.default_rng(8)
        cube = rng.uniform(size=(3, 30, 33))
        psf = GaussianPSF(0.2)
        kernel = psf.kernel(PIX, sampling="center")
        np.testing.assert_array_equal(convolve_with_kernel(cube, kernel),
                                      convolve_cube(cube, psf, PIX, sampling="center"))
        for bad in (np.ones((4, 4)), np.ones((3, 5)), np.full((3, 3), np.nan)):
            with pytest.raises(ConfigError, match="kernel"):
                convolve_with_kernel(cube, bad)

    def test_enclosed_radius_analytic(self):
        psf = GaussianPSF(0.2)
        assert psf.enclosed_radius(0.5) == pytest.approx(0.1, rel=1e-12)  # HWHM for a circular Gaussian
        assert psf.enclosed_fraction(psf.enclosed_radius(0.9)) == pytest.approx(0.9, rel=1e-12)

    def test_tiny_psf_is_nearly_identity(self):
        k = GaussianPSF(0.005).kernel(PIX)
        assert k[k.shape[0] // 2, k.shape[0] // 2] > 0.999999

    @pytest.mark.parametrize(
        "kwargs, match",
        [({"fwhm": -0.1}, "GaussianPSF.fwhm"), ({"fwhm": np.nan}, "fwhm"), ({"fwhm": "0.1"}, "fwhm"),
         ({"fwhm": 0.1, "ref_wavelength": 2e4}, "both"),
         ({"fwhm": 0.1, "ref_wavelength": -2e4, "scaling_exponent": 1.0}, "ref_wavelength")],
    )
    def test_invalid_parameters(self, kwargs, match):
        with pytest.raises(ConfigError, match=match):
            GaussianPSF(**kwargs)

    def test_invalid_kernel_arguments(self):
        with pytest.raises(ConfigError, match="pixel_scale"):
            GaussianPSF(0.1).kernel(0.0)
        with pytest.raises(ConfigError, match="oversample"):
            GaussianPSF(0.1).kernel(PIX, oversample=0)
        with pytest.raises(ConfigError, match="sampling"):
            GaussianPSF(0.1).kernel(PIX, sampling="centre")
        with pytest.raises(ConfigError, match="fraction"):
            GaussianPSF(0.1).enclosed_radius(1.0)


class TestEllipticalGaussian(PSFInvariants):
    psf = EllipticalGaussianPSF(0.3, 0.12, 35.0)

    def test_pa_rotation_by_90_is_transpose(self):
        k0 = EllipticalGaussianPSF(0.3, 0.1, 0.0).kernel(PIX)
        k90 = EllipticalGaussianPSF(0.3, 0.1, 90.0).kernel(PIX)
        np.testing.assert_allclose(k90, k0.T, rtol=1e-10, atol=1e-16)
        # pa = 0: major axis along y (north); pa = 90: along x (east = -x)
        mxx, myy = _second_moments(k0)
        assert myy > 4 * mxx

    def test_pa_is_east_of_north(self):
        # pa = 45: major axis toward north-east = (+y, -x): row +d, column -d
        k = EllipticalGaussianPSF(0.4, 0.1, 45.0).kernel(PIX)
        h, d = k.shape[0] // 2, 2
        assert k[h + d, h - d] > 10 * k[h + d, h + d]
        np.testing.assert_allclose(EllipticalGaussianPSF(0.4, 0.1, -45.0).kernel(PIX), k[:, ::-1],
                                   rtol=1e-10, atol=1e-16)
        np.testing.assert_allclose(EllipticalGaussianPSF(0.4, 0.1, 225.0).kernel(PIX), k,
                                   rtol=1e-10, atol=1e-16)

    def test_round_limit_equals_circular(self):
        np.testing.assert_allclose(EllipticalGaussianPSF(0.15, 0.15, 20.0).kernel(PIX),
                                   GaussianPSF(0.15).kernel(PIX), rtol=1e-8, atol=1e-14)
        assert EllipticalGaussianPSF(0.2, 0.2).enclosed_radius(0.7) == pytest.approx(
            GaussianPSF(0.2).enclosed_radius(0.7), rel=1e-10)

    def test_enclosed_fraction_matches_kernel(self):
        psf = EllipticalGaussianPSF(0.4, 0.2, 20.0)
        pix = 0.01
        k = psf.kernel(pix)
        h = k.shape[0] // 2
        for r in (0.05, 0.1, 0.2, 0.3):
            measured = CircularAperture((h, h), r / pix).do_photometry(k, method="exact")[0][0]
            assert measured == pytest.approx(psf.enclosed_fraction(r), abs=2e-3)

    def test_minor_larger_than_major_rejected(self):
        with pytest.raises(ConfigError, match=r"fwhm_minor = 0.3 arcsec; allowed: \(0, fwhm_major"):
            EllipticalGaussianPSF(0.2, 0.3, 0.0)


class TestMoffat(PSFInvariants):
    psf = MoffatPSF(0.2, 3.5)

    def test_fwhm_definition(self):
        psf = MoffatPSF(0.2, 2.5)
        r = 0.1  # half maximum at r = FWHM / 2
        assert (1 + (r / psf.alpha) ** 2) ** (-psf.beta) == pytest.approx(0.5, rel=1e-12)

    def test_enclosed_fraction_vs_analytic(self):
        # Moffat (1969): F(r) = 1 - (1 + (r/alpha)^2)^(1 - beta); the kernel is the
        # profile truncated where F = 0.999 and renormalised, so it holds F(r)/0.999.
        psf = MoffatPSF(0.2, 2.5)
        pix = 0.01
        k = psf.kernel(pix)
        h = k.shape[0] // 2
        for r in (0.05, 0.1, 0.2, 0.4, 0.8):
            analytic = 1 - (1 + (r / psf.alpha) ** 2) ** (1 - psf.beta)
            measured = CircularAperture((h, h), r / pix).do_photometry(k, method="exact")[0][0]
            assert measured == pytest.approx(analytic / KERNEL_ENCLOSED_FRACTION, abs=2e-3)
            assert psf.enclosed_fraction(r) == pytest.approx(analytic, rel=1e-12)

    def test_truncated_at_999_radius(self):
        psf = MoffatPSF(0.2, 2.5)
        r_cut = psf.enclosed_radius(KERNEL_ENCLOSED_FRACTION)
        assert r_cut == pytest.approx(psf.alpha * np.sqrt(99.0), rel=1e-12)  # 0.001^(1/(1-2.5)) = 100
        k = psf.kernel(PIX)
        h = k.shape[0] // 2
        y, x = np.indices(k.shape) - h
        outside = np.hypot(x, y) * PIX > r_cut + PIX
        assert np.all(k[outside] == 0.0)

    def test_invalid_beta(self):
        with pytest.raises(ConfigError, match="beta = 1.0; allowed: > 1"):
            MoffatPSF(0.2, 1.0)

    def test_enormous_kernel_refused(self):
        with pytest.raises(ConfigError, match="pixels wide"):
            MoffatPSF(0.2, 1.01).kernel(PIX)


class TestImage(PSFInvariants):
    # an elliptical Gaussian sampled finely and stored as an image
    psf = ImagePSF(EllipticalGaussianPSF(0.2, 0.15, 30.0).kernel(0.01), 0.01)

    def test_same_pixel_scale_returns_the_image(self):
        image = GaussianPSF(0.15).kernel(PIX)
        np.testing.assert_allclose(ImagePSF(image, PIX).kernel(PIX), image, rtol=1e-12, atol=1e-15)

    def test_rebinning_matches_analytic_kernel(self):
        truth = GaussianPSF(0.2)
        psf = ImagePSF(truth.kernel(0.01), 0.01)
        ours, ref = psf.kernel(PIX), truth.kernel(PIX)
        h, hr = ours.shape[0] // 2, ref.shape[0] // 2
        np.testing.assert_allclose(ours[h - hr:h + hr + 1, h - hr:h + hr + 1], ref, atol=1e-6)

    def test_fwhm_estimate(self):
        assert ImagePSF(GaussianPSF(0.2).kernel(0.01), 0.01).fwhm_at() == pytest.approx(0.2, rel=0.01)
        # elliptical: equivalent FWHM sqrt(major * minor)
        assert self.psf.fwhm_at() == pytest.approx(np.sqrt(0.2 * 0.15), rel=0.01)

    def test_enclosed_radius(self):
        psf = ImagePSF(GaussianPSF(0.2).kernel(0.01), 0.01)
        assert psf.enclosed_radius(0.5) == pytest.approx(0.1, rel=0.02)

    def test_normalised_and_read_only(self):
        psf = ImagePSF(np.ones((5, 5)) * 3.0, 0.1)
        assert psf.image.sum() == pytest.approx(1.0)
        with pytest.raises(ValueError):
            psf.image[0, 0] = 1.0

    @pytest.mark.parametrize("cards", [
        {"PIXSCALE": 0.02},
        {"PIXELSCL": 0.02},
        {"CDELT1": -0.02 / 3600, "CDELT2": 0.02 / 3600},
        {"CD1_1": -0.02 / 3600 * np.cos(0.3), "CD1_2": 0.02 / 3600 * np.sin(0.3),
         "CD2_1": 0.02 / 3600 * np.sin(0.3), "CD2_2": 0.02 / 3600 * np.cos(0.3)},
        {"CDELT1": -0.02, "CDELT2": 0.02, "CUNIT1": "arcsec", "CUNIT2": "arcsec"},
    ])
    def test_fits_round_trip(self, tmp_path, cards):
        image = GaussianPSF(0.2).kernel(0.02) * 7.0
        path = tmp_path / "psf.fits"
        hdu = fits.PrimaryHDU(image)
        hdu.header.update(cards)
        hdu.writeto(path)
        psf = ImagePSF.from_fits(path)
        assert psf.pixel_scale == pytest.approx(0.02, rel=1e-9)
        np.testing.assert_allclose(psf.image, image / image.sum(), rtol=1e-12)
        assert psf.source == str(path)
        # header -> file round trip
        again = psf_from_header(psf.to_header())
        np.testing.assert_array_equal(again.image, psf.image)

    def test_fits_image_in_extension(self, tmp_path):
        path = tmp_path / "psf.fits"
        ext = fits.ImageHDU(np.ones((3, 3)), name="PSF")
        ext.header["PIXSCALE"] = 0.1
        fits.HDUList([fits.PrimaryHDU(), ext]).writeto(path)
        assert ImagePSF.from_fits(path).pixel_scale == 0.1
        assert ImagePSF.from_fits(path, hdu="PSF").image.shape == (3, 3)

    def test_fits_without_pixel_scale(self, tmp_path):
        path = tmp_path / "psf.fits"
        fits.PrimaryHDU(np.ones((5, 5))).writeto(path)
        with pytest.raises(DataError, match="no pixel scale"):
            ImagePSF.from_fits(path)
        assert ImagePSF.from_fits(path, pixel_scale=0.03).pixel_scale == 0.03

    def test_fits_non_square_pixels(self, tmp_path):
        path = tmp_path / "psf.fits"
        hdu = fits.PrimaryHDU(np.ones((5, 5)))
        hdu.header.update({"CDELT1": 1e-5, "CDELT2": 2e-5})
        hdu.writeto(path)
        with pytest.raises(DataError, match="not square"):
            ImagePSF.from_fits(path)

    def test_unreadable_file(self, tmp_path):
        path = tmp_path / "not.fits"
        path.write_text("hello")
        with pytest.raises(DataError):
            ImagePSF.from_fits(path)

    def test_bad_images(self):
        with pytest.raises(DataError, match="2D"):
            ImagePSF(np.ones(5), 0.1)
        with pytest.raises(DataError, match="sums to"):
            ImagePSF(np.zeros((3, 3)), 0.1)

    def test_wavelength_scaling_stretches_the_image(self):
        base = GaussianPSF(0.2).kernel(0.01)
        psf = ImagePSF(base, 0.01, ref_wavelength=2e4, scaling_exponent=1.0)
        np.testing.assert_allclose(psf.kernel(PIX, wavelength=4e4), ImagePSF(base, 0.02).kernel(PIX),
                                   rtol=1e-12, atol=1e-17)


class TestWavelengthScaling:
    psf = GaussianPSF(0.1, ref_wavelength=20000.0, scaling_exponent=1.0)

    def test_fwhm_at(self):
        assert self.psf.varies and not GaussianPSF(0.1).varies
        assert not GaussianPSF(0.1, ref_wavelength=2e4, scaling_exponent=0.0).varies
        assert self.psf.fwhm_at() == 0.1
        assert self.psf.fwhm_at(40000.0) == pytest.approx(0.2)
        np.testing.assert_allclose(self.psf.fwhm_at([10000.0, 30000.0]), [0.05, 0.15])
        moffat = MoffatPSF(0.3, 3.0, ref_wavelength=1e4, scaling_exponent=-0.2)
        assert moffat.fwhm_at(3.2e4) == pytest.approx(0.3 * 3.2 ** -0.2)
        assert GaussianPSF(0.1).fwhm_at(5e4) == 0.1  # constant without scaling

    def test_kernel_at_wavelength(self):
        np.testing.assert_array_equal(self.psf.kernel(PIX, wavelength=30000.0),
                                      GaussianPSF(0.15).kernel(PIX))
        ell = EllipticalGaussianPSF(0.2, 0.1, 10.0, ref_wavelength=1e4, scaling_exponent=0.5)
        np.testing.assert_allclose(ell.kernel(PIX, wavelength=4e4),
                                   EllipticalGaussianPSF(0.4, 0.2, 10.0).kernel(PIX), rtol=1e-12)
        assert self.psf.enclosed_radius(0.5, wavelength=40000.0) == pytest.approx(0.1)

    def test_grouping_within_tolerance(self):
        wave = np.linspace(20000.0, 20100.0, 50)  # FWHM spread 0.5%
        groups = _channel_groups(self.psf, wave, 50)
        members = np.sort(np.concatenate([g[1] for g in groups]))
        np.testing.assert_array_equal(members, np.arange(50))
        for w_rep, idx in groups:
            f = self.psf.fwhm_at(wave[idx])
            assert f.max() <= f.min() * 1.001 + 1e-15
            assert f.min() <= self.psf.fwhm_at(w_rep) <= f.max()
        assert 4 <= len(groups) <= 6
        flat = _channel_groups(self.psf, np.full(10, 2e4), 10)
        assert len(flat) == 1

    def test_cube_matches_channel_by_channel(self):
        rng = np.random.default_rng(11)
        wave = np.linspace(15000.0, 25000.0, 12)
        cube = rng.uniform(size=(12, 40, 40))
        out = convolve_cube(cube, self.psf, PIX, wavelengths=wave)
        for c in range(12):
            exact = fftconvolve(cube[c], self.psf.kernel(PIX, wavelength=wave[c]), mode="same")
            np.testing.assert_allclose(out[c], exact, atol=1e-12)

    def test_cube_grouped_close_to_exact(self):
        # 0.1% grouping: per-channel kernels differ by < 0.05% in FWHM.
        wave = np.linspace(20000.0, 20400.0, 200)
        cube = _point_cube(n_chan=200, ny=31, nx=31, pos=(15, 15))
        out = convolve_cube(cube, self.psf, PIX, wavelengths=wave)
        for c in (0, 57, 199):
            k = self.psf.kernel(PIX, wavelength=wave[c])
            h = k.shape[0] // 2
            window = out[c, 15 - h:16 + h, 15 - h:16 + h] / cube[c].sum()
            assert np.abs(window - k).max() < 2e-3 * k.max()

    def test_wavelengths_required_when_varying(self):
        with pytest.raises(ConfigError, match="varies with wavelength"):
            convolve_cube(np.zeros((2, 5, 5)), self.psf, PIX)
        with pytest.raises(ConfigError, match="one per channel"):
            convolve_cube(np.zeros((2, 5, 5)), self.psf, PIX, wavelengths=[2e4])

    def test_pad_width(self):
        wave = np.linspace(10000.0, 40000.0, 7)
        assert pad_width(self.psf, PIX, wave) == self.psf.half_width(PIX, wavelength=40000.0)
        assert pad_width(GaussianPSF(0.1), PIX, wave) == GaussianPSF(0.1).half_width(PIX)
        shrinking = GaussianPSF(0.1, ref_wavelength=1e4, scaling_exponent=-1.0)
        assert pad_width(shrinking, PIX, wave) == shrinking.half_width(PIX, wavelength=1e4)

    def test_header_records_scaling(self):
        header = self.psf.to_header()
        assert header["PSF_WREF"] == 20000.0 and header["PSF_WEXP"] == 1.0
        assert psf_from_header(header) == self.psf


def test_convolve_cube_input_errors():
    with pytest.raises(ConfigError, match="n_chan, ny, nx"):
        convolve_cube(np.zeros(5), GaussianPSF(0.1), PIX)
    with pytest.raises(DataError, match="NaN"):
        convolve_cube(np.full((1, 5, 5), np.nan), GaussianPSF(0.1), PIX)
    with pytest.raises(ConfigError, match="PSF instance"):
        convolve_cube(np.zeros((1, 5, 5)), 0.1, PIX)


def test_header_errors():
    with pytest.raises(DataError, match="PSF_KIND"):
        psf_from_header({})
    with pytest.raises(DataError, match="PSF_BETA"):
        psf_from_header({"PSF_KIND": "moffat", "PSF_FWHM": 0.1})
    with pytest.raises(DataError, match="allowed"):
        psf_from_header({"PSF_KIND": "airy", "PSF_FWHM": 0.1})
    with pytest.raises(DataError, match="does not describe"):
        MoffatPSF.from_header(GaussianPSF(0.1).to_header())


def test_psf_from_config():
    from types import SimpleNamespace

    base = dict(fwhm=0.2, fwhm_minor=None, pa=0.0, beta=None, file=None,
                ref_wavelength=None, scaling_exponent=None)
    assert psf_from_config(SimpleNamespace(**base, kind="gaussian")) == GaussianPSF(0.2)
    assert psf_from_config(SimpleNamespace(**{**base, "beta": 2.5}, kind="moffat")) == MoffatPSF(0.2, 2.5)
    ell = SimpleNamespace(**{**base, "fwhm_minor": 0.1, "pa": 30.0}, kind="elliptical_gaussian")
    assert psf_from_config(ell) == EllipticalGaussianPSF(0.2, 0.1, 30.0)


def test_large_cube_is_fast():
    import time

    cube = np.random.default_rng(0).normal(size=(400, 60, 60))
    psf = GaussianPSF(0.3, ref_wavelength=3e4, scaling_exponent=1.0)
    start = time.perf_counter()
    convolve_cube(cube, psf, PIX, wavelengths=np.linspace(2.8e4, 3.2e4, 400))
    assert time.perf_counter() - start < 3.0


def test_every_header_kind_has_a_registered_model():
    """psf_from_header / psf_from_config dispatch through the models' registry."""
    from mockzgrad.observation.psf import PSF_KINDS
    from mockzgrad.observation.psf.base import _MODELS

    assert set(_MODELS) == set(PSF_KINDS)
    assert all(_MODELS[k].kind == k for k in PSF_KINDS)
    with pytest.raises(ConfigError, match="psf.kind = 'airy'"):
        psf_from_config(type("Cfg", (), {"kind": "airy", "ref_wavelength": None, "scaling_exponent": None})())
