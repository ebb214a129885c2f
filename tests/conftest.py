"""Shared pytest setup: a non-interactive matplotlib backend; the fuzz suite's profiles and report.

The property-based fuzz (``tests/test_fuzz_*.py``, machinery in ``tests/fuzz/``)
runs a bounded, derandomized profile by default (well under a minute in
all) and about 100,000 random cases with ``MINIVQ_FUZZ=long``. With
``MINIVQ_FUZZ_REPORT=path`` the counts of every outcome (good and bad) are
written there as JSON when the session ends.
"""
import json
import os
import signal

from hypothesis import HealthCheck, settings

os.environ.setdefault("MPLBACKEND", "Agg")

# A shell starts background jobs (`pytest &`, a CI runner's `cmd &`) with SIGINT ignored, and the
# children inherit the ignore: the Ctrl-C tests' `minivq` processes would never see their SIGINT.
# A handler (unlike an ignore) is reset to the default at exec, so the children get Python's usual
# KeyboardInterrupt again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

settings.register_profile("minivq-ci", deadline=None, database=None, derandomize=True,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("minivq-long", deadline=None, database=None, suppress_health_check=list(HealthCheck))
settings.load_profile("minivq-long" if os.environ.get("MINIVQ_FUZZ", "") == "long" else "minivq-ci")


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("MINIVQ_FUZZ_REPORT")
    if not path:
        return
    try:
        from fuzz.runner import TALLY
    except ImportError:  # no fuzz test ran
        return
    with open(path, "w") as f:
        json.dump({"cases": sum(TALLY.values()), **dict(sorted(TALLY.items()))}, f, indent=1)
