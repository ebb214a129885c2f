"""The course kit: exercises in the library, graded by its tests (COURSE.md says how it works)."""
from .exercises import COURSE, Course, Exercise

__all__ = ["COURSE", "Course", "Exercise"]
