"""Bad-input sweep: property-based and fuzzing tests (see docs/robustness.md)."""

from __future__ import annotations

# One CPU-time bound for every sweep: the gjson library's own tests define it (they must not
# import the application's tests), the application's sweeps reuse it.
from shared.lib.gjson.tests import BOUND_S, timed

__all__ = ["BOUND_S", "timed"]
