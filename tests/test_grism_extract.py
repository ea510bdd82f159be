"""Line-map extraction from grism exposures: round trips through the dispersion operator.

The exposures are made here with the observer's dispersion operator D
(:func:`mockzgrad.observation.grism.dispersion.disperse`) applied to known
line maps (noise-free, no continuum), Hbeta and [OIII] 4960,5008 blended
along the dispersion (13 pixels apart, the source 20 pixels across).
"""

import numpy as np
import pytest

from mockzgrad.errors import ConfigError
from mockzgrad.observation.grism.dispersion import GrismDispersion, disperse, make_frame
from mockzgrad.physics.lines import LINES
from mockzgrad.products.grism import GrismExposure, GrismMock
from mockzgrad.recovery import grism_extract as gx

N, PS, Z = 30, 0.03, 2.0
YY, XX = np.mgrid[:N, :N] - (N - 1) / 2


def _blob(x0, y0, s, q=0.6):
    return np.exp(-0.5 * (((XX - x0) / s) ** 2 + ((YY - y0) / (s * q)) ** 2))


HB = 1e-18 * _blob(0, 0, 3.5)
O3 = 4e-18 * (_blob(1.5, -1, 3) + 0.5 * _blob(-4, 3, 2))


def _mock(pas=(270.0, 0.0), o3=O3):
    exps = []
    for i, pa in enumerate(pas):
        m = GrismDispersion(grism="GR150R", filter="F150W", pa=0.0, pa_disp=pa, dispersion=22.0, wave_ref=15000.0,
                            tilt=0.5, sens_peak=1e17, sens_lo=13000.0, sens_hi=17000.0, sens_taper=200.0)
        m = make_frame(m, N, PS, 13000.0, 17000.0)
        waves = [LINES[n].wavelength * (1 + Z) for n in ("Hb", "OIII_4960", "OIII_5008")]
        frame = disperse(np.stack([HB, o3 / gx.OIII_RATIO, o3]), np.array(waves), m)
        exps.append(GrismExposure(name=f"e{i}", sci=frame, var=np.ones(frame.shape), header=m.to_header(),
                                  exptime=1e3))
    return GrismMock(exposures=exps, direct={"F150W": HB + o3}, pixel_scale=PS,
                     psf={"PSF_KIND": "gaussian", "PSF_FWHM": 0.1})


@pytest.fixture(scope="module")
def joint():
    return gx.extract_line_maps(_mock(), Z, method="joint", velocities="none", continuum=False, segmentation=1e-4)


@pytest.mark.parametrize("name, truth", [("Hb", HB), ("OIII_5008", O3)])
def test_joint_inversion_of_two_orientations_returns_the_maps(joint, name, truth):
    got = joint.flux[joint.index(name)]
    sel = truth > 0.01 * truth.max()
    assert np.max(np.abs(got - truth)[sel]) < 0.01 * truth.max()
    assert joint.variance[joint.index(name)][sel].min() > 0


def test_lines_no_exposure_covers_are_excluded_not_zero(joint):
    assert "Ha" not in joint.names and "OII_3727" not in joint.names
    assert {"line": "Ha", "reason": "not covered"} in joint.provenance["excluded"]
    assert joint.kind == "linemaps" and joint.redshift == Z and joint.psfs["Hb"]["PSF_KIND"] == "gaussian"


@pytest.mark.parametrize("name, truth", [("Hb", HB), ("OIII_5008", O3)])
def test_isophote_deblending_total_flux(name, truth):
    """Wang et al. 2017: de-blended Hb and [OIII] 5008 inside the 10 % isophote, per exposure, combined."""
    maps = gx.extract_line_maps(_mock(), Z, method="isophote", continuum=False, isophote=0.01)
    got = maps.flux[maps.index(name)]
    assert np.nansum(got) == pytest.approx(truth.sum(), rel=0.03)


def test_design_matrix_is_the_dispersion_operator():
    """The explicit matrix the solver uses reproduces disperse() (an independent implementation) to round-off."""
    mock = _mock(pas=(270.0, 0.0, 33.0))
    models = gx._models(mock)
    exps = gx._prepare(mock, models, range(3), continuum=False)
    groups, _ = gx._covered_groups(models, gx.LINE_GROUPS, Z)
    support = np.ones((N, N), bool)
    support[:3] = False
    a = gx._design_matrix(exps, groups, Z, support)
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(len(groups), N, N)) * support
    want = []
    for e in exps:
        frame = np.zeros(e.model.shape)
        for g, m in zip(groups, maps):
            for line, share in g.shares:
                lam = LINES[line].wavelength * (1 + Z)
                frame += disperse(share * m[None], np.array([lam]), e.model)
        want.append((frame * e.weight).ravel())
    got = a @ np.concatenate([m[support] for m in maps])
    want = np.concatenate(want)
    assert np.max(np.abs(got - want)) < 1e-10 * np.max(np.abs(want))


def _noise_pulls(k_real, *, continuum):
    """Pulls (map - noise-free map) / sqrt(var) of the joint maps over ``k_real`` noise realisations.

    The noise sigma varies across each frame (x 1 to x 3), so the 1/VAR weighting matters.
    """
    mock = _mock()
    free = gx.extract_line_maps(mock, Z, velocities="none", continuum=continuum, segmentation=0.05)
    rng = np.random.default_rng(np.random.SeedSequence(16))
    pulls = []
    for _ in range(k_real):
        exps = []
        for e in mock.exposures:
            sigma = 2e-3 * (1.0 + 2.0 * np.linspace(0, 1, e.sci.shape[1])[None, :] * np.ones(e.sci.shape))
            exps.append(GrismExposure(name=e.name, sci=e.sci + sigma * rng.normal(size=e.sci.shape), var=sigma**2,
                                      header=e.header, exptime=e.exptime))
        noisy = GrismMock(exposures=exps, direct=mock.direct, pixel_scale=PS, psf=mock.psf)
        got = gx.extract_line_maps(noisy, Z, velocities="none", continuum=continuum, segmentation=0.05)
        pulls.append((got.flux - free.flux) / np.sqrt(got.variance))
    pulls = np.asarray(pulls)
    return pulls[:, np.isfinite(pulls[0])], got.variance[np.isfinite(pulls[0])]


@pytest.mark.parametrize("continuum", [False, True])
def test_map_variances_describe_the_noise(continuum):
    """Over 40 realisations the pulls have unit variance, within the Monte Carlo error of that number.

    The realisations are independent, so the per-realisation mean square pull t_k (over the pixels,
    which are correlated) gives the error of their mean: |mean t - 1| < 4 std(t) / sqrt(K); checked
    for all pixels and separately for the half with the larger variances (de-blended, near the edge).
    """
    k_real = 40
    pulls, var = _noise_pulls(k_real, continuum=continuum)
    assert pulls.shape[1] > 300
    for sel in (np.ones(var.size, bool), var > np.median(var)):
        t = np.mean(pulls[:, sel] ** 2, axis=1)
        assert abs(t.mean() - 1.0) < 4.0 * t.std(ddof=1) / np.sqrt(k_real) + 1e-12, (t.mean(), t.std())


def test_bad_arguments():
    with pytest.raises(ConfigError, match="method"):
        gx.extract_line_maps(_mock(), Z, method="drizzle")
    with pytest.raises(ConfigError, match="nii_ha"):
        gx.line_groups(0.9)
    with pytest.raises(ConfigError, match="maps.*Hx"):
        gx.extract_line_maps(_mock(), Z, maps=("Hb", "Hx"))


def test_a_map_selection_fits_only_those_maps():
    """maps=("Hb",) on a source of Hbeta alone: only Hbeta is fitted, and it is the input map to 1 % of its peak."""
    got = gx.extract_line_maps(_mock(o3=0 * O3), Z, method="joint", velocities="none", continuum=False, segmentation=1e-4,
                               maps=("Hb",))
    assert got.names == ("Hb",) and got.flux.shape == (1, N, N)
    sel = HB > 0.01 * HB.max()
    assert np.max(np.abs(got.flux[0] - HB)[sel]) < 0.01 * HB.max()


def test_a_uniform_velocity_is_a_redshift_change():
    """Lines of every pixel at v km/s land where the same lines at (1 + z)(1 + v/c) - 1 land."""
    mock = _mock(pas=(270.0, 0.0))
    models = gx._models(mock)
    exps = gx._prepare(mock, models, range(2), continuum=False)
    groups, _ = gx._covered_groups(models, gx.LINE_GROUPS, Z)
    support = np.ones((N, N), bool)
    v = 300.0
    moved = gx._design_matrix(exps, groups, Z, support, np.full((N, N), v))
    want = gx._design_matrix(exps, groups, (1 + Z) * (1 + v / 299792.458) - 1, support)
    rest = gx._design_matrix(exps, groups, Z, support)
    assert abs(moved - want).max() < 1e-12 * abs(want).max()
    assert abs(moved - rest).max() > 0.1 * abs(rest).max()


def test_rotation_field_is_antisymmetric_about_the_centre():
    """The field's shape on a centred elliptical disk: v(-x) = -v(x), |v| <= V, one sign per side of the minor axis."""
    mock = GrismMock(exposures=[], direct={"F150W": HB}, pixel_scale=PS, psf={})
    geometry = gx._disk_geometry(mock, N)
    v = gx._rotation_field(200.0, geometry)
    assert np.max(np.abs(v + v[::-1, ::-1])) < 1e-9 * np.max(np.abs(v))
    assert 100.0 < np.max(np.abs(v)) <= 200.0
    side = v * XX  # HB's major axis is along x: the receding side is x > 0 or x < 0
    assert np.all(side >= -1e-9) or np.all(side <= 1e-9)


def test_extract_command_passes_the_extraction_options(tmp_path, capsys):
    """`mockzgrad extract --clean-direct N --velocities none` gives the maps of the Python call; bad N is one line."""
    from mockzgrad.cli import main
    from mockzgrad.products.linemaps import read_linemaps

    path = tmp_path / "g.fits"
    _mock().write(path)
    out = tmp_path / "maps.fits"
    assert main(["extract", str(path), "-o", str(out), "--redshift", str(Z), "--clean-direct", "1",
                 "--velocities", "none"]) == 0
    got = read_linemaps(out)
    want = gx.extract_line_maps(_mock(), Z, clean_direct=1, velocities="none")
    assert got.names == want.names
    np.testing.assert_allclose(got.flux, want.flux, rtol=1e-6, atol=1e-30)
    capsys.readouterr()
    assert main(["extract", str(path), "-o", str(tmp_path / "m2.fits"), "--redshift", str(Z),
                 "--clean-direct", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "clean_direct" in err[0]


def _shifted_mock(offset_pixels, *, reject_flag=False):
    """Two exposures (pa_disp 270, 0); the first (noisier, VAR 4) dispersed with a wavelength zero-point
    error of ``offset_pixels`` pixels that its header does not know (Wang et al. 2017 Sect. 4.3's offsets)."""
    from dataclasses import replace

    exps = []
    for i, pa in enumerate((270.0, 0.0)):
        m = GrismDispersion(grism="GR150R", filter="F150W", pa=0.0, pa_disp=pa, dispersion=22.0, wave_ref=15000.0,
                            tilt=0.5, sens_peak=1e17, sens_lo=13000.0, sens_hi=17000.0, sens_taper=200.0)
        m = make_frame(m, N, PS, 13000.0, 17000.0)
        true = replace(m, wave_offset=offset_pixels * m.dispersion) if i == 0 else m
        waves = [LINES[n].wavelength * (1 + Z) for n in ("Hb", "OIII_4960", "OIII_5008")]
        frame = disperse(np.stack([HB, O3 / gx.OIII_RATIO, O3]), np.array(waves), true)
        header = dict(m.to_header(), REJECT=True) if (reject_flag and i == 0) else m.to_header()
        exps.append(GrismExposure(name=f"e{i}", sci=frame, var=np.full(frame.shape, 4.0 if i == 0 else 1.0),
                                  header=header, exptime=1e3))
    return GrismMock(exposures=exps, direct={"F150W": HB + O3}, pixel_scale=PS,
                     psf={"PSF_KIND": "gaussian", "PSF_FWHM": 0.1})


def test_isophote_alignment_recovers_an_injected_wavelength_shift():
    """Wang et al. 2017 Eq. 1: a map shifted by a zero-point error of 0.6 pixel (along +x for pa_disp 270,
    the direct image's frame: the line lands 0.6 pixel blueward, the map 0.6 pixel to -x) is moved back
    onto the reference exposure's by +0.6 pixel, to within 0.1 pixel of the shift without the error."""
    kw = dict(method="isophote", continuum=False, isophote=0.01, align=True)
    base = gx.extract_line_maps(_shifted_mock(0.0), Z, **kw).provenance["alignment"]["e0"]
    got = gx.extract_line_maps(_shifted_mock(0.6), Z, **kw).provenance["alignment"]["e0"]
    assert base["reference"] == "e1" and got["reference"] == "e1"
    assert got["dx_pixels"] - base["dx_pixels"] == pytest.approx(0.6, abs=0.1)
    assert got["dy_pixels"] - base["dy_pixels"] == pytest.approx(0.0, abs=0.1)
    assert abs(base["dx_pixels"]) < 0.1 and abs(base["dy_pixels"]) < 0.1 and abs(got["rotation_deg"]) < 1.0
    assert got["nccf"] > 0.95


@pytest.mark.parametrize("how", ["argument", "header"])
def test_rejected_exposure_is_left_out_and_listed(how):
    """A flagged exposure (reject=, or REJECT in its header) does not enter the combination: the maps are
    those of the other exposure alone, and the provenance names it."""
    mock = _shifted_mock(0.6, reject_flag=how == "header")
    kw = dict(method="isophote", continuum=False, isophote=0.01)
    got = gx.extract_line_maps(mock, Z, reject=("e0",) if how == "argument" else (), **kw)
    alone = gx.extract_line_maps(GrismMock(exposures=mock.exposures[1:], direct=mock.direct, pixel_scale=PS,
                                           psf=mock.psf), Z, **kw)
    assert got.provenance["rejected_exposures"] == ["e0"]
    np.testing.assert_array_equal(got.flux, alone.flux)


def test_reject_names_an_unknown_exposure_or_the_joint_method():
    with pytest.raises(ConfigError, match="reject"):
        gx.extract_line_maps(_mock(), Z, method="isophote", reject=("nope",))
    with pytest.raises(ConfigError, match="isophote"):
        gx.extract_line_maps(_mock(), Z, method="joint", align=True)


def test_default_velocity_model_is_none_for_both_methods():
    """No velocities given: "none" (DEFAULT_VELOCITIES; "rotation" is opt-in, see its comment)."""
    assert gx.DEFAULT_VELOCITIES == {"joint": "none", "isophote": "none"}
    got = gx.extract_line_maps(_mock(), Z, method="isophote", continuum=False, isophote=0.01)
    assert got.provenance["velocities"] == "none"
    got = gx.extract_line_maps(_mock(), Z, continuum=False, segmentation=0.05)
    assert got.provenance["velocities"] == "none"
