"""Run a lesson's self-check in a terminal: ``python -m tlcourse.quiz 01`` (``--flashcards``, ``--answers``).

The same as ``tlcourse quiz 01``. Only an entry point: the logic lives in :mod:`tlcourse.quizzes`,
the questions in ``tlcourse/content/quiz_NN.json``. In a notebook use ``tl.quiz_bank("01")`` instead.
"""
import sys

from tlcourse.quizzes import main

if __name__ == "__main__":
    sys.exit(main())
