"""Temporary shim while the modules move to :mod:`minivq.checks` (0.3); removed before release."""
from .checks.arrays import *  # noqa: F401,F403
from .checks.arrays import _is_int  # noqa: F401
