"""Property-based fuzz of minivq's public functions (issue 10), shared machinery.

Every public function has a *spec* (in ``tests/test_fuzz_<area>.py``): a
Hypothesis draw of valid arguments and an ``expect(args)`` that states the
documented contract independently of minivq: it raises :class:`Invalid`
(with the names an error may cite) when the arguments break it, and otherwise
returns a checker of the result (a property or an independent reference).
Each case draws valid arguments, corrupts one of them (or none) with
:mod:`fuzz.values`, calls the function, and :mod:`fuzz.runner` sorts the
outcome:

- ``ok_result`` (valid input, correct result) and ``ok_error`` (invalid input,
  ValueError/TypeError naming the argument) are the two good outcomes;
- ``wrong_result``, ``nonfinite`` (NaN/inf from finite input where the exact
  result fits the dtype), ``valid_rejected``, ``silently_accepted``,
  ``wrong_argument`` (an error that does not name the argument), ``obscure``
  (any other exception), ``hang`` and ``crash`` fail the test.

Profiles (``tests/conftest.py``): ``MINIVQ_FUZZ=long`` runs about 100,000
cases; by default a bounded CI profile runs well under a minute.
``MINIVQ_FUZZ_REPORT=path`` writes the outcome counts as JSON at the end.
Areas that reach the compiled kernel run in a child process, so a crash
fails the test instead of killing pytest.
"""
