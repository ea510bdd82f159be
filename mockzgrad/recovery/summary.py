"""How the recovery summarises a posterior: the percentiles it reports.

Shared by the metallicity methods and the gradient fit, which therefore need
not import each other for it.
"""

from __future__ import annotations

import math

__all__ = ["PERCENTILES"]

#: Lower and upper percentiles reported, 100 Phi(-1) and 100 Phi(+1) (15.87 and 84.13, the
#: "16th/84th percentiles" of the literature), exactly mean -+ 1 sigma for a Gaussian.
PERCENTILES = (50.0 * math.erfc(1.0 / math.sqrt(2.0)), 100.0 - 50.0 * math.erfc(1.0 / math.sqrt(2.0)))
