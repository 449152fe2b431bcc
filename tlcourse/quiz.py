"""Run a lesson's self-check in a terminal: ``python -m tlcourse.quiz 01`` (``--flashcards``, ``--answers``).

Only an entry point: the questions and the logic live in :mod:`tlcourse.quizzes`. In a notebook
use ``tl.quiz_bank("01")`` instead. (Do not ``import tlcourse.quiz``: the name ``tl.quiz`` is the
quiz widget.)
"""
import sys

from tlcourse.quizzes import main

if __name__ == "__main__":
    sys.exit(main())
