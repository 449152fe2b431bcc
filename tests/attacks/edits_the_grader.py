# Write into what the grader trusts: the package (an editable install is the repository), its
# tasks, every folder on the import path, the repository; shadow a module the grader imports.
import os, sys
import tlcourse

marker = "@MARKER@.py"
package = os.path.dirname(tlcourse.__file__)
targets = [package, os.path.join(package, "grading", "tasks"), os.path.dirname(package), "@ROOT@",
           "@ROOT@/tests", *[p for p in sys.path if p and os.path.isdir(p)]]
for folder in targets:
    try:
        with open(os.path.join(folder, marker), "w") as handle:
            handle.write("raise SystemExit('the grader ran a student file')\n")
    except OSError:
        pass
try:
    open(os.path.join(package, "grading", "tasks", "l01.py"), "a").close()  # opening for append is enough to tell
except OSError:
    pass
with open("skimage.py", "w") as handle:  # its own folder: shadows skimage for this kernel only
    handle.write("raise ImportError('shadowed')\n")
