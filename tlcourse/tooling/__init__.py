"""Course tooling for authors and instructors, behind the ``tlcourse`` command (``cli.py``).

* ``exercises``: build the exercise notebooks from the solutions, and check they are in sync;
* ``site``: execute the lessons and write an HTML copy;
* ``doctor``: check that a setup is ready to run offline.

Nothing here is needed by a notebook.
"""
