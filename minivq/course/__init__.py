"""The course kit: exercises in the library, graded by its tests (COURSE.md is the syllabus).

- :mod:`.markers`: solution regions (``### BEGIN SOLUTION <name>`` ...
  ``### END SOLUTION``, nbgrader's convention) and inline-question answers
  (``### BEGIN ANSWER`` ... ``### END ANSWER``), and the stub that replaces them;
- :mod:`.exercises`: the registry: each exercise's points, METHOD.md IDs,
  file, graded tests, notebooks;
- :mod:`.student`: writes the student copy (``minivq course student OUT``);
- :mod:`.grade` and :mod:`.plugin`: run the graded tests and score them
  (``minivq course grade [DIR] [--json FILE]``);
- :mod:`.cli`: the ``minivq course`` command.

No dependency beyond the library's and pytest (for grading).
"""
from .exercises import COURSE, Course, Exercise

__all__ = ["COURSE", "Course", "Exercise"]
