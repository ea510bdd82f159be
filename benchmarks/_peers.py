"""The single-line benchmark cube, built by mockzgrad, KinMS and DysmalPy.

One [OIII] 5008 line of an exponential disk at redshift 5 (the flagship
galaxy with one line and no noise) on a 64 x 64 x 29 cube, and what each
tool needs to make the same cube. Every builder returns a pair
``(run, to_cube)``: ``run()`` is the call that is timed (the tool's own
work, from its public API, nothing cached between calls), ``to_cube(raw)``
converts its result to mockzgrad's convention, cube axes
``(n_chan, ny, nx)``, column index increasing to the west, row index to
the north, channels increasing in velocity, flux per spaxel and channel in
erg/s/cm^2.

How each tool defines flux (and how ``to_cube`` converts it):

* mockzgrad: flux per spaxel and channel, erg/s/cm^2; the cube sum is the
  configured total flux times the fraction of the PSF-smeared light inside
  the field. Nothing to convert.
* KinMS: ``model_cube(..., intFlux=F)`` rescales the cube after binning so
  that ``sum(cube) * dv / sum(psf) = F`` (``KinMS.normalise_cube``; the
  cube is per beam, its PSF has peak 1). ``to_cube`` multiplies by
  ``dv / sum(psf)``, so the sum is ``F`` exactly, by construction:
  cloudlets that land outside the field are dropped *before* the rescaling,
  so the light outside the field is put back inside it.
* DysmalPy: no flux unit. Each sample of its 3D (oversampled sky x line of
  sight) grid carries ``amp_lumtoflux * light_profile(R) * zprofile(z)``
  (``ConstantDimming``, default ``amp_lumtoflux = 1e-10``; ExpDisk light in
  Msun/kpc^2 for ``mass_to_light = 1``) and emits a Gaussian of amplitude
  ``f / sqrt(2 pi sigma)`` sampled at the channel centres
  (``models/cutils.pyx: populate_cube``). The cube sum is therefore
  ``K = amp_lumtoflux * 10**total_mass * sqrt(2 pi) sigmaz / a**3 *
  sqrt(sigma0) / dv`` times the fraction inside the field, with ``a`` the
  sample spacing in kpc; ``to_cube`` multiplies by ``F / K``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SingleLineProblem",
    "PROBLEM",
    "in_field_fraction",
    "mockzgrad_config",
    "make_mockzgrad",
    "make_kinms",
    "make_dysmalpy",
    "voxel_errors",
    "kinms_available",
    "dysmalpy_available",
]

#: Sersic b_1 (exponential disk): r_eff = B1 * scale length.
B1 = 1.6783469900166612


@dataclass(frozen=True, kw_only=True)
class SingleLineProblem:
    """The single-line cube every tool builds.

    Attributes
    ----------
    redshift : float
    n_pix : int
        Spaxels per side.
    pixel_scale : float
        arcsec.
    channel_width : float
        km/s.
    n_chan : int
        Channels, centred on the line (0 km/s is the centre of the middle one).
    psf_fwhm : float
        Circular Gaussian PSF FWHM, arcsec.
    lsf_sigma : float
        Gaussian LSF sigma, km/s.
    r_eff : float
        Half-light radius of the exponential disk, kpc.
    inclination, pa : float
        deg; ``pa`` is the receding major axis, east of north.
    sigma0 : float
        Intrinsic velocity dispersion, km/s.
    log_mbary : float
        log10 baryonic mass of the exponential disk that sets the rotation
        curve, Msun.
    total_flux : float
        Intrinsic line flux, erg/s/cm^2.
    oversample : int
        Sub-pixels per spaxel per axis (mockzgrad and DysmalPy).
    """

    redshift: float = 5.0
    n_pix: int = 64
    pixel_scale: float = 0.05
    channel_width: float = 106.0
    n_chan: int = 29
    psf_fwhm: float = 0.2
    lsf_sigma: float = 125.0
    r_eff: float = 2.0
    inclination: float = 20.0
    pa: float = 30.0
    sigma0: float = 80.0
    log_mbary: float = 10.5
    total_flux: float = 1.0e-16
    oversample: int = 4

    @property
    def fov(self) -> float:
        """Side of the field, arcsec."""
        return self.n_pix * self.pixel_scale

    @property
    def arcsec_per_kpc(self) -> float:
        """Proper angular scale, arcsec/kpc, flat LCDM H0 = 70, Om0 = 0.3 (all three tools)."""
        from astropy.cosmology import FlatLambdaCDM

        return float(FlatLambdaCDM(H0=70.0, Om0=0.3).arcsec_per_kpc_proper(self.redshift).value)

    @property
    def scale_length_arcsec(self) -> float:
        """Exponential scale length, arcsec."""
        return self.r_eff / B1 * self.arcsec_per_kpc


#: The benchmark cube.
PROBLEM = SingleLineProblem()


def in_field_fraction(problem: SingleLineProblem = PROBLEM, *, n_r: int = 6000, n_phi: int = 1440) -> float:
    """Fraction of the PSF-smeared light of a thin exponential disk inside the square field.

    Independent of every tool: the disk is integrated on a polar grid in
    its own plane (midpoint rule out to 40 scale lengths), each element
    projected to the sky, and the probability that a circular Gaussian PSF
    keeps it inside the square is the product of two erf differences.
    Converged to 1e-8 at the default grid.

    Parameters
    ----------
    problem : SingleLineProblem
    n_r, n_phi : int
        Grid points in radius and azimuth; > 0.

    Returns
    -------
    float
        Fraction in [0, 1].
    """
    from scipy.special import erf

    sigma = problem.psf_fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    half = 0.5 * problem.fov
    edges = np.linspace(0.0, 40.0, n_r + 1)
    u = 0.5 * (edges[1:] + edges[:-1])  # radius / scale length
    weight = u * np.exp(-u)  # Sigma(R) R dR, up to a constant
    phi = (np.arange(n_phi) + 0.5) * (2.0 * math.pi / n_phi)
    r = u * problem.scale_length_arcsec
    x_disk = r[:, None] * np.cos(phi)[None, :]
    y_disk = r[:, None] * np.sin(phi)[None, :] * math.cos(math.radians(problem.inclination))
    th = math.radians(problem.pa)
    east = x_disk * math.sin(th) + y_disk * math.cos(th)
    north = x_disk * math.cos(th) - y_disk * math.sin(th)

    def kept(x):
        return 0.5 * (erf((half - x) / (math.sqrt(2.0) * sigma)) + erf((half + x) / (math.sqrt(2.0) * sigma)))

    return float((weight[:, None] * kept(east) * kept(north)).sum() / (weight.sum() * n_phi))


# --------------------------------------------------------------------------
# mockzgrad
# --------------------------------------------------------------------------

def mockzgrad_config(problem: SingleLineProblem = PROBLEM, *, oversample: int | None = None,
                     full_field: bool = False):
    """The :class:`mockzgrad.config.MockConfig` of the single-line cube.

    One line (``OIII_5008``, the reference line, so no generating set),
    flat metallicity ``z0 = 8.0`` (irrelevant for one line), a given
    3.2 arcsec field, a 1500 km/s window (29 channels of 106 km/s centred
    on the line), no noise. ``full_field``: the outer spaxels oversampled as
    much as the inner ones (``oversample_outer = oversample``; for a reference
    cube).
    """
    from mockzgrad.config import config_from_dict

    os_ = problem.oversample if oversample is None else oversample

    data = {
        "galaxy": {
            "redshift": problem.redshift, "r_eff": problem.r_eff, "sersic_n": 1.0,
            "inclination": problem.inclination, "pa": problem.pa, "sigma0": problem.sigma0,
            "rotation": {"kind": "exponential_disk", "log_mbary": problem.log_mbary},
            "metallicity": {"profile": "linear", "grad_z": 0.0, "z0": 8.0},
        },
        "lines": {
            "reference_line": "OIII_5008", "reference_flux": problem.total_flux,
            "lines": ["OIII_5008"], "generating_set": [],
        },
        "instrument": {
            "pixel_scale": problem.pixel_scale, "fov": problem.fov,
            "oversample": os_,
            **({"oversample_outer": os_} if full_field else {}),
            "lsf_sigma": problem.lsf_sigma,
            "psf": {"kind": "gaussian", "fwhm": problem.psf_fwhm},
            "spectral": {"grid": "velocity", "channel_width": problem.channel_width, "window": 1500.0},
        },
        "noise": {"enabled": False},
        "cosmology": {"h0": 70.0, "om0": 0.3},
    }
    return config_from_dict(data)


def make_mockzgrad(problem: SingleLineProblem = PROBLEM, *, oversample: int | None = None,
                   full_field: bool = False):
    """``(run, to_cube)`` for mockzgrad: ``run`` is ``model_cube(cfg)`` (noise-free, PSF applied)."""
    from mockzgrad.observation.ifu import model_cube

    cfg = mockzgrad_config(problem, oversample=oversample, full_field=full_field)

    def run():
        return model_cube(cfg)[0]

    def to_cube(raw):
        if raw.shape != (problem.n_chan, problem.n_pix, problem.n_pix):
            raise RuntimeError(f"mockzgrad cube has shape {raw.shape}; expected "
                               f"{(problem.n_chan, problem.n_pix, problem.n_pix)}")
        return raw

    return run, to_cube


# --------------------------------------------------------------------------
# KinMS
# --------------------------------------------------------------------------

def kinms_available() -> str | None:
    """None if KinMS imports, else the reason it does not."""
    try:
        from kinms import KinMS  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip"
        return f"{type(exc).__name__}: {exc}"
    return None


def make_kinms(problem: SingleLineProblem = PROBLEM, *, n_samps: int = 500_000, seed: int | None = None):
    """``(run, to_cube)`` for KinMS (``kinms.KinMS``, KinMSpy >= 3).

    ``run`` constructs ``KinMS(...)`` (draws the cloudlet random numbers,
    builds the beam) and calls ``model_cube``: a user changing a parameter
    between cubes does both. Set-up differences from mockzgrad:

    * light: ``sbProf = exp(-R / R_d)`` tabulated on 0..3 arcsec
      (0.001 arcsec steps; mockzgrad's light is negligible beyond 3 arcsec);
      ``velProf`` = :func:`mockzgrad.source.galaxy.exponential_disk_vcirc` on the
      same radii (the identical rotation curve as a table);
    * dispersion: ``gasSigma = sigma0`` and
      ``spectral_resolution = lsf_sigma``; KinMS draws each cloudlet's
      velocity from a Gaussian of width sqrt(sigma0^2 + lsf^2), the same
      quadrature sum mockzgrad integrates analytically;
    * position and velocity of each cloudlet are rounded to the nearest
      pixel/channel (Monte Carlo integration over pixels and channels);
    * grid alignment: KinMS puts the disk centre on pixel ``n/2`` and zero
      velocity at channel ``n_chan/2``; ``phaseCent = (-pix/2, -pix/2)``
      and ``vOffset = -dv/2`` move them to the field centre (a pixel corner
      for even n) and the middle channel's centre, as in mockzgrad;
    * PSF: KinMS samples the Gaussian at pixel centres, trims it below
      1e-5 of the peak and convolves each channel with
      ``astropy.convolution.convolve`` (direct, normalised kernel);
    * orientation: KinMS cubes are ``(x, y, v)`` with x increasing to the
      west, and ``posAng`` is the receding side east of north, as
      mockzgrad's ``pa``: ``to_cube`` only transposes.
    """
    from kinms import KinMS

    from mockzgrad.source.galaxy import exponential_disk_vcirc

    kpc_per_arcsec = 1.0 / problem.arcsec_per_kpc
    rad = np.arange(0.0, 3.0 + 5e-4, 1e-3)  # arcsec
    sb_prof = np.exp(-rad / problem.scale_length_arcsec)
    vel_prof = exponential_disk_vcirc(rad * kpc_per_arcsec, problem.log_mbary, problem.r_eff)
    dv, pix = problem.channel_width, problem.pixel_scale
    state = {}

    def run():
        k = KinMS(problem.fov, problem.fov, problem.n_chan * dv, pix, dv,
                  [problem.psf_fwhm, problem.psf_fwhm, 0.0], nSamps=int(n_samps), seed=seed,
                  spectral_resolution=problem.lsf_sigma)
        cube = k.model_cube(problem.inclination, problem.pa, gasSigma=problem.sigma0,
                            sbProf=sb_prof, sbRad=rad, velRad=rad, velProf=vel_prof,
                            intFlux=problem.total_flux, phaseCent=[-0.5 * pix, -0.5 * pix],
                            vOffset=-0.5 * dv)
        state["psf_sum"] = float(k.psf.sum())
        return cube

    def to_cube(raw):
        return np.ascontiguousarray(raw.transpose(2, 1, 0)) * (dv / state["psf_sum"])

    return run, to_cube


# --------------------------------------------------------------------------
# DysmalPy
# --------------------------------------------------------------------------

def dysmalpy_available() -> str | None:
    """None if DysmalPy imports, else the reason it does not."""
    try:
        from dysmalpy import galaxy, instrument, models, observation  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip"
        return f"{type(exc).__name__}: {exc}"
    return None


def _no_pressure_support(r, model, vel_sq, tracer=None):
    """``KinematicOptions.apply_pressure_support`` with pressure support off.

    DysmalPy 2.0.0's own method raises ``UnboundLocalError`` when
    ``pressure_support = False`` (``vel_squared`` is only assigned inside
    the ``if``); this is what the method is meant to return then.
    """
    return vel_sq


def make_dysmalpy(problem: SingleLineProblem = PROBLEM, *, oversample: int | None = None,
                  sigmaz: float = 0.1, zcalc_truncate: bool | None = None):
    """``(run, to_cube)`` for DysmalPy (``Galaxy.create_model_data`` of a 3D observation).

    Model: ``ExpDisk`` (Freeman thin exponential disk, ``total_mass =
    log_mbary``, the same ``r_eff``; light = mass, ``light=True``), whose
    circular velocity is the same formula as mockzgrad's;
    ``DispersionConst(sigma0)``; ``Geometry(inc, pa - 180)`` (DysmalPy's
    ``pa`` is the *blueshifted* side east of north; x increases to the
    west, as in mockzgrad); ``ZHeightGauss(sigmaz)``, no halo, no pressure
    support (instance-level fix of a DysmalPy 2.0.0 bug, see
    :func:`_no_pressure_support`). Instrument: ``GaussianBeam(psf_fwhm)``,
    ``LSF(lsf_sigma)``, the same pixel scale, 64 x 64 field, velocity grid
    ``-14 dv .. 14 dv``.

    Differences that remain (documented in benchmarks/README.md):

    * DysmalPy needs a disk thickness: it samples emission on a 3D sky grid
      (oversampled pixels x line of sight, ``n * oversample + 1`` samples
      along the line of sight). ``sigmaz = 0.1`` kpc is 1.3 sample spacings
      at oversample 4 (fine enough that the sum over the line of sight is
      exact) and moves light by <= 0.006 arcsec on the sky at 20 deg;
    * spectra are Gaussians *sampled* at channel centres, and the LSF
      kernel is sampled too; mockzgrad and KinMS integrate over each
      channel. With sigma_tot = 148 km/s and 106 km/s channels the sampled
      line peak is ~2 % higher (the channel boxcar adds dv^2/12 to the
      variance of the integrated profile);
    * flux has no unit (see the module notes); ``to_cube`` uses the
      analytic factor ``K``.

    Parameters
    ----------
    problem : SingleLineProblem
    oversample : int or None
        Sub-pixels per spaxel (None: the problem's).
    sigmaz : float
        Gaussian disk thickness, kpc; > 0.
    zcalc_truncate : bool or None
        DysmalPy's option to populate only samples near the midplane.
    """
    import astropy.units as u
    from dysmalpy import galaxy, instrument, models, observation

    os_ = problem.oversample if oversample is None else oversample
    dv = problem.channel_width
    half = (problem.n_chan - 1) // 2
    dysmal_pa = problem.pa - 180.0 if problem.pa > 0 else problem.pa + 180.0

    def build():
        gal = galaxy.Galaxy(z=problem.redshift, name="bench")
        mod = models.ModelSet()
        mod.add_component(models.ExpDisk(total_mass=problem.log_mbary, r_eff=problem.r_eff, name="disk"),
                          light=True)
        mod.add_component(models.DispersionConst(sigma0=problem.sigma0, name="dispprof", tracer="line"))
        mod.add_component(models.ZHeightGauss(sigmaz=sigmaz, name="zheight"))
        mod.add_component(models.Geometry(inc=problem.inclination, pa=dysmal_pa, xshift=0.0, yshift=0.0,
                                          name="geom", obs_name="bench"))
        mod.kinematic_options.adiabatic_contract = False
        mod.kinematic_options.pressure_support = False
        mod.kinematic_options.apply_pressure_support = _no_pressure_support
        obs = observation.Observation(name="bench", tracer="line")
        inst = instrument.Instrument()
        inst.beam = instrument.GaussianBeam(major=problem.psf_fwhm * u.arcsec)
        inst.lsf = instrument.LSF(problem.lsf_sigma * u.km / u.s)
        inst.pixscale = problem.pixel_scale * u.arcsec
        inst.fov = [problem.n_pix, problem.n_pix]
        inst.spec_type = "velocity"
        inst.spec_step = dv * u.km / u.s
        inst.spec_start = -half * dv * u.km / u.s
        inst.nspec = problem.n_chan
        inst.ndim = 3
        inst.set_beam_kernel()
        inst.set_lsf_kernel()
        obs.instrument = inst
        obs.mod_options.oversample = os_
        obs.mod_options.zcalc_truncate = zcalc_truncate
        gal.model = mod
        gal.add_observation(obs)
        return gal, obs

    gal, obs = build()
    logging.getLogger("DysmalPy").setLevel(logging.WARNING)
    sample_kpc = problem.pixel_scale / os_ / gal.dscale
    amp = gal.model.dimming.amp_lumtoflux if gal.model.dimming is not None else 1.0
    k_norm = (amp * 10.0 ** problem.log_mbary * math.sqrt(2.0 * math.pi) * sigmaz / sample_kpc**3
              * math.sqrt(problem.sigma0) / dv)

    def run():
        # the model set is reused (as in a fit); the cube is recomputed from scratch
        gal.create_model_data()
        return obs.model_cube.data

    def to_cube(raw):
        data = np.asarray(raw.unmasked_data[:].value if hasattr(raw, "unmasked_data") else raw, dtype=float)
        return data * (problem.total_flux / k_norm)

    return run, to_cube


# --------------------------------------------------------------------------
# accuracy
# --------------------------------------------------------------------------

def voxel_errors(cube: np.ndarray, ref: np.ndarray) -> dict:
    """Voxel-level difference of a cube from a reference cube, in units of the reference's peak.

    Returns
    -------
    dict
        ``max_dev``: max |cube - ref| / max(ref); ``rms_dev``: rms of
        (cube - ref) / max(ref) over voxels where ref > 1 % of its peak.
    """
    peak = float(ref.max())
    diff = cube - ref
    sel = ref > 0.01 * peak
    return {"max_dev": float(np.abs(diff).max() / peak),
            "rms_dev": float(np.sqrt(np.mean(diff[sel] ** 2)) / peak)}
