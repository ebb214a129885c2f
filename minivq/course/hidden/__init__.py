"""The teacher's side of the course kit: never in a student copy.

- ``bugs.py``: the buggy variant of each spot-the-bug exercise (what the student copy plants);
- ``hidden_*.py``: hidden checks, pytest modules that ``minivq course grade`` runs beside an
  exercise's public tests when the teacher grades, on inputs drawn at grading time
  (``_draw.py``: one seed per graded submission, recorded in its JSON).

``minivq course student`` leaves this folder out of the copy; a copy without it can only run the
self-check (the public tests).
"""
