"""The exercises of the course: what to write, where, what grades it (the registry).

Each :class:`Exercise` names one or more solution regions (see
:mod:`minivq.course.markers`) in ONE file of the repository, the METHOD.md
equations they implement, the tests that grade them, and the notebooks
that derive them. An *implementation* exercise's regions become stubs in the
student copy; a *spot-the-bug* exercise's regions become its ``buggy``
variants (a real bug of public code), and its tests fail until the student
finds and fixes it.

``requires`` lists the exercises a graded test also runs through (a
gradient check of the CMCM loss runs the code-distribution backward, and
the backward of a buggy forward fails its check until the forward is
fixed): the course hands them out in that order, ``minivq course grade``
says "needs exercise X first", and ``tests/test_course.py`` checks that a
test never fails because of an exercise that is not declared here.

Test ids are pytest node ids, ``file::function``; a bare function id covers
all its parametrizations, and shell wildcards (``[*teaching*]``) select
some of them.
"""
from dataclasses import dataclass, field

__all__ = ["Exercise", "Course", "COURSE", "EXERCISES", "NOTEBOOK_NEEDS"]


@dataclass(frozen=True)
class Exercise:
    """One graded exercise.

    Attributes
    ----------
    name : str
        snake_case; the marker lines and the stub's error message use it.
    points : int
    method_ids : tuple of str
        METHOD.md equation IDs it implements, e.g. ``("VQ-5",)``.
    path : str
        The file, relative to the repository root, holding its regions.
    instruction : str
        One line: what to write (the stub's NotImplementedError says it).
    tests : tuple of str
        Graded tests: pytest node ids or patterns. All must pass.
    notebooks : tuple of str
        Notebooks that derive it.
    requires : tuple of str
        Exercises its graded tests also run through.
    buggy : tuple of str or None
        Spot-the-bug: the replacement of each of its regions, in file order
        (dedented source; "" removes the region).
    threshold : float or None
        The gradient-check relative error its tests must stay below, shown
        by ``minivq course grade`` beside the error measured.
    """

    name: str
    points: int
    method_ids: tuple
    path: str
    instruction: str
    tests: tuple
    notebooks: tuple = ()
    requires: tuple = ()
    buggy: tuple = None
    threshold: float = None

    @property
    def kind(self):
        """``"implement"`` or ``"bug"``."""
        return "implement" if self.buggy is None else "bug"


@dataclass(frozen=True)
class Course:
    """A registry of exercises and what the student copy does with the rest of the repository.

    Attributes
    ----------
    exercises : tuple of Exercise
        In the order of the syllabus.
    notebook_needs : dict of str -> tuple of str
        Notebook path -> the exercises it runs (the student copy says so in
        its first cell).
    package : str
        The package the graded tests must import from the graded folder.
    instructor_only : tuple of str
        Files left out of the student copy.
    unscanned : tuple of str
        Folders whose files are copied as they are, never searched for
        markers (the course kit itself mentions them).
    """

    exercises: tuple
    notebook_needs: dict = field(default_factory=dict)
    package: str = "minivq"
    instructor_only: tuple = ("tests/test_course.py",)
    unscanned: tuple = ("minivq/course",)

    def names(self):
        """Exercise names, in order."""
        return [ex.name for ex in self.exercises]

    def get(self, name):
        """The exercise called ``name`` (KeyError if none)."""
        for ex in self.exercises:
            if ex.name == name:
                return ex
        raise KeyError(name)

    def select(self, names=None, arg="--exercises"):
        """The exercises called ``names`` (all when None), in registry order.

        Raises
        ------
        ValueError
            Naming ``arg``, the unknown names and the known ones.
        """
        if names is None:
            return list(self.exercises)
        unknown = [n for n in names if n not in self.names()]
        if unknown:
            raise ValueError(f"{arg}: unknown exercise {', '.join(map(repr, unknown))}; the exercises are "
                             f"{', '.join(self.names())} (minivq course list)")
        return [ex for ex in self.exercises if ex.name in set(names)]

    @property
    def points(self):
        """Total points."""
        return sum(ex.points for ex in self.exercises)


EXERCISES = (
)

#: Notebook -> the exercises its cells run, in the order they first run.
NOTEBOOK_NEEDS = {}

#: The course of this repository.
COURSE = Course(EXERCISES, NOTEBOOK_NEEDS)
