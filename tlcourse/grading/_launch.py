"""Start a grading kernel as an unprivileged user (plumbing; stdlib only).

The sandbox runs ``prlimit ... -- python -I -S _launch.py CONFIG -- KERNEL ARGV...`` inside bubblewrap
(``prlimit`` has set the resource limits, which the kernel and everything it starts inherit).
``CONFIG`` is JSON: ``{"uid": int or null, "connection_file": path}``. This script

1. when it runs as root and ``uid`` is given, caps the number of files in the sandbox's private
   /tmp (``"tmp": {"path", "size", "files"}``: a remount of its tmpfs with ``nr_inodes``, so a flood
   of empty files cannot eat the machine's kernel memory), reads the connection file (owned by the
   grader), drops to ``uid``/``uid`` with no supplementary groups (which clears every capability),
   writes its own copy of the file in the private /tmp, and hands that copy to the kernel;
2. in a sandbox (``"sandboxed": true``), forgets ``JPY_PARENT_PID``: the kernel's parent there is
   the sandbox's init, never the grader, and ipykernel would take that for a dead parent (the
   sandbox dies with the grader anyway);
3. replaces itself with the kernel (``os.execv``).

It must not import anything outside the standard library: it runs before the environment is
trusted to be importable, and the kernel's own interpreter starts right after it.
"""
import json
import os
import sys


def main(argv):
    config = json.loads(argv[1])
    kernel = argv[argv.index("--") + 1:]
    uid = config.get("uid")
    connection = config.get("connection_file")
    if uid is not None and os.getuid() == 0:
        if config.get("tmp"):
            _cap_files(**config["tmp"])
        with open(connection, "rb") as handle:
            secret = handle.read()
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        if os.getuid() == 0 or os.geteuid() == 0:
            raise SystemExit("tlcourse sandbox: could not leave root")
        private = os.path.join(os.environ.get("TMPDIR", "/tmp"), "kernel-connection.json")
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret)
        kernel = [private if arg == connection else arg for arg in kernel]
    if config.get("sandboxed"):
        os.environ.pop("JPY_PARENT_PID", None)
    os.execv(kernel[0], kernel)


def _cap_files(path, size, files):
    """Remount the tmpfs at ``path`` with at most ``files`` inodes (needs CAP_SYS_ADMIN, dropped next)."""
    import ctypes

    ms_nosuid, ms_nodev, ms_remount = 2, 4, 32
    libc = ctypes.CDLL(None, use_errno=True)
    options = f"size={int(size)},nr_inodes={int(files)}".encode()
    if libc.mount(b"tmpfs", path.encode(), b"tmpfs", ms_remount | ms_nosuid | ms_nodev, options) != 0:
        raise SystemExit(f"tlcourse sandbox: could not cap the files in {path} (errno {ctypes.get_errno()})")


if __name__ == "__main__":
    main(sys.argv)
