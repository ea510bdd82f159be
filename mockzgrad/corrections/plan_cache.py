"""The planner's noise-free cache: one noise-free IFU cube per mock, re-noised at every depth.

The plan runs its suites with common random numbers: every suite of a setup
(each |grad_z| and depth, and the exposure solver's check suites) uses the
same suite seed, so mock ``j`` has the same seed, position angle and unit
noise deviates at every depth; only the noise scale differs
(:func:`mockzgrad.observation.noise.add_noise`). Its noise-free cube is then
the same too, and :func:`observe_cached` builds it once
(:func:`mockzgrad.observation.ifu.model_cube`) and adds the noise of each
depth (:func:`mockzgrad.observation.ifu.build_cube` with ``model=``).

The cache is in memory, per process, least recently used out first past
:data:`CACHE_BYTES`; the key is the mock's whole configuration without its
noise depth (``noise.snr``, ``noise.sigma``, ``noise.windows``,
``noise.enabled``), seed and resolved preset values included, so any other
change (a preset value, the PSF, the seed) is a different key. Suites that
run in a process pool rebuild the cube in each worker (no sharing across
processes). Non-IFU modes (grism, slit-stepping) are observed uncached.
``mockzgrad plan --no-cache`` runs the shipped job instead.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict

from ..config import config_to_dict
from ..observation import observe
from ..observation.ifu import build_cube, model_cube

__all__ = ["CACHE_BYTES", "NOISE_DEPTH_KEYS", "cache_key", "observe_cached", "run_mock", "clear", "stats"]

#: Largest total size of the cached noise-free cubes, bytes.
CACHE_BYTES = 256 * 2**20
#: ``[noise]`` keys that set the depth only (left out of the cache key).
NOISE_DEPTH_KEYS = ("snr", "sigma", "windows", "enabled")

_CACHE: OrderedDict = OrderedDict()
_STATS = {"hits": 0, "misses": 0}


def cache_key(cfg) -> str:
    """The configuration without its noise depth, as canonical JSON."""
    d = config_to_dict(cfg)
    d["noise"] = {k: v for k, v in d.get("noise", {}).items() if k not in NOISE_DEPTH_KEYS}
    return json.dumps(d, sort_keys=True, default=repr)


def _nbytes(model) -> int:
    return int(model[0].nbytes)


def _model(cfg, use_numba: bool):
    key = cache_key(cfg) + f"|numba={use_numba}"
    if key in _CACHE:
        _STATS["hits"] += 1
        _CACHE.move_to_end(key)
        return _CACHE[key]
    _STATS["misses"] += 1
    model = model_cube(cfg, use_numba=use_numba)
    _CACHE[key] = model
    while sum(_nbytes(m) for m in _CACHE.values()) > CACHE_BYTES and len(_CACHE) > 1:
        _CACHE.popitem(last=False)
    return model


def observe_cached(cfg, *, keep_noise_free: bool = True, use_numba: bool = True):
    """:func:`~mockzgrad.observation.observe` with the noise-free IFU cube taken from the cache.

    The product equals ``observe(cfg)``'s (tested): the same noise-free cube,
    noise stage and truth.
    """
    if cfg.instrument.kind != "ifu":
        return observe(cfg, keep_noise_free=keep_noise_free, use_numba=use_numba)
    product = build_cube(cfg, keep_noise_free=keep_noise_free, use_numba=use_numba, model=_model(cfg, use_numba))
    # as observe does: the pixel unit of the cube file
    return dataclasses.replace(product, unit=cfg.instrument.cube_unit)


def run_mock(spec) -> dict:
    """The suite job (:func:`mockzgrad.suites.job.run_mock`) observing through :func:`observe_cached`."""
    from ..suites.job import run_mock as shipped

    return shipped(spec, observe_with=observe_cached)


def clear() -> None:
    """Empty the cache and zero the hit / miss counts."""
    _CACHE.clear()
    _STATS.update(hits=0, misses=0)


def stats() -> dict:
    """Hits, misses and cached cubes of this process."""
    return dict(_STATS, cubes=len(_CACHE))
