"""The course kit: exercises in the library, graded by its tests (COURSE.md is the syllabus).

- :mod:`.markers`: solution regions (``### BEGIN SOLUTION <name>`` ...
  ``### END SOLUTION``, nbgrader's convention) and inline-question answers
  (``### BEGIN ANSWER`` ... ``### END ANSWER``), and the stub that replaces them;
- :mod:`.exercises`: the registry: each exercise's points, METHOD.md IDs,
  file, public and hidden graded tests, notebooks;
- :mod:`.student` and :mod:`.redact`: the student copy (``minivq course student OUT``)
  and what it strips;
- :mod:`.grade`: the student's self-check (the copy's public tests, one pytest process);
- :mod:`.teacher`: the teacher's grading, with :mod:`.splice` (the student's regions in the
  teacher's code), :mod:`.lint` (what a region may hold), :mod:`.sandbox`, :mod:`.zygote` and
  :mod:`.child` (one limited process per exercise), :mod:`.plugin` (the pytest recorder) and
  :mod:`.report` (rows, table, JSON, CSV);
- ``hidden/``: the teacher's side (hidden checks, buggy variants), never in a student copy;
- :mod:`.cli`, :mod:`.grading_cli`, :mod:`.source`: the ``minivq course`` command.

No dependency beyond the library's and pytest (for grading; Cython and a C
compiler for the kernel exercise).
"""
from .exercises import COURSE, Course, Exercise

__all__ = ["COURSE", "Course", "Exercise"]
