"""The graded exercise tasks, one module per lesson: ``l01.py`` holds lesson 01's tasks.

Each module builds :class:`tlcourse.grading.checks.Task` objects and passes them to
:func:`tlcourse.grading.checks.register`. Import package helpers relatively (``from ... import models``),
never by the package's absolute name: the grader loads a fresh copy of the package inside
the learner's kernel, and relative imports keep that copy's helpers fresh too.
INSTRUCTORS.md ("Add a task") walks through writing one.
"""
