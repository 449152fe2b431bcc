"""Where each grading kernel runs: a bubblewrap sandbox, a command of yours, or (only when asked) bare.

A submission is untrusted code. By default on Linux each kernel runs inside bubblewrap
(``bwrap``, the sandbox Flatpak uses) with

* a read-only view of the Python environment and of this package, and nothing else of the
  machine's files but the system libraries: no solutions, no other submissions, no gradebook;
* a private, size-limited ``/tmp`` (its working folder, home and caches);
* one shared folder, ``io``: the kernel's sockets (ZeroMQ over UNIX sockets) and its evidence;
  once the kernel has started, it can no longer add files there (see :meth:`KernelPlan.lock`);
* the grader's feature cache, read-only, so that a submission does not extract again what the
  lessons already cached (``features.py`` reads it and writes new entries to the private /tmp);
* no network, its own process, IPC and host-name namespaces, a new session, and death with
  the grader: nothing it starts outlives it, and it cannot see or signal the grader;
* a user of its own when the grader is root (one uid per submission; in a container where root
  cannot create namespaces, a user namespace instead), and then a cap on the files in its /tmp;
* limits on address space, processes, file size, open files and CPU time (util-linux ``prlimit``).

``Sandbox(command=...)`` runs the kernel through a command of yours instead (a container
engine, say); ``Sandbox(mode="none")`` runs it as the grader's own user, which is only safe for
code you trust. ``tlcourse grade`` refuses that unless ``--unsafe-no-sandbox`` is given.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

MODES = ("auto", "bwrap", "none")
UID_BASE = 1_950_000_000  # the grader as root runs submission i as uid UID_BASE + i (no such user exists)
SANDBOX_TMP = "/tmp"
SHARED_CACHE = "/srv/tlcourse-cache"  # where the grader's feature cache appears, read-only, in a sandbox
RISKS = ("Without a sandbox, each submission's code runs as your own user, with your files and your "
         "network: it can read the solutions and the other submissions, forge its evidence files, "
         "edit the grader or the course package, kill the grader, leave processes behind, and fill "
         "the memory or the disk.")


class SandboxUnavailable(RuntimeError):
    """No sandbox can run here, and running submissions bare was not allowed."""


@dataclass(frozen=True)
class Limits:
    """Resource limits per kernel (each one a POSIX rlimit; None: no limit)."""

    memory: int | None = 8 << 30  # bytes of address space (torch reserves some 3 GiB at import)
    processes: int | None = 512  # processes and threads of the submission's user
    file_size: int | None = 256 << 20  # bytes per file written
    open_files: int | None = 1024
    tmp_size: int = 1 << 30  # bytes of the private /tmp (a tmpfs: it counts as memory)
    tmp_files: int = 100_000  # files and folders in the private /tmp (each costs kernel memory); root graders only

    def rlimits(self, cpu_seconds: float | None) -> dict[str, int | None]:
        return {"RLIMIT_AS": self.memory, "RLIMIT_NPROC": self.processes, "RLIMIT_FSIZE": self.file_size,
                "RLIMIT_NOFILE": self.open_files, "RLIMIT_CORE": 0,
                "RLIMIT_CPU": int(cpu_seconds) + 1 if cpu_seconds else None}


@dataclass(frozen=True)
class Sandbox:
    """How kernels are confined: ``mode`` ``auto`` (bwrap where it works), ``bwrap`` or ``none``,
    or ``command``, a kernel command template of your own (see :func:`custom_argv`)."""

    mode: str = "auto"
    command: str | None = None
    limits: Limits = field(default_factory=Limits)
    share_feature_cache: bool = True  # the grader's feature cache, read-only, in every kernel (bwrap and bare)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"The sandbox mode is one of {', '.join(MODES)}, not {self.mode!r}.")

    def resolve(self) -> str:
        """``bwrap``, ``command`` or ``none``; :class:`SandboxUnavailable` when the wanted one cannot run."""
        if self.command:
            return "command"
        if self.mode == "none":
            return "none"
        problem = bwrap_problem()
        if problem is None:
            return "bwrap"
        raise SandboxUnavailable(
            f"No sandbox for the submissions' kernels: {problem}\n"
            "Install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`), "
            "or give a kernel command that isolates them (`--kernel-command`, e.g. a container; see "
            "INSTRUCTORS.md), or, for code you trust only, pass `--unsafe-no-sandbox`.\n" + RISKS)


@dataclass
class KernelPlan:
    """What the kernel runner needs for one submission's kernel."""

    argv: list[str]  # reads the connection file ``io/kernel.json``
    env: dict
    cwd: str  # where the kernel process starts on the host
    io: Path  # the folder shared with the kernel (sockets, connection file, evidence)
    transport: str = "ipc"
    interrupt_mode: str = "message"
    sandboxed: bool = True
    uid: int | None = None  # the kernel's own uid (the grader is root), or None
    lockable: bool = False  # whether io is locked while the kernel runs (bubblewrap only)

    def new_file(self, name: str) -> Path:
        """An empty file in io that the kernel may write (but neither replace nor remove): its evidence."""
        path = self.io / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        if self.uid is not None:
            os.chown(path, self.uid, self.uid)
        return path

    def unlock(self) -> None:
        """Let the next kernel create its sockets in io (called before each kernel starts)."""
        if self.lockable:
            os.chmod(self.io, 0o770 if self.uid is not None else 0o700)

    def lock(self) -> None:
        """Once the kernel has made its sockets (it answered), it can add no file to io: no flood of
        files or inodes in the grader's folder, only the evidence files made by :meth:`new_file`,
        each capped by the file-size limit. Hard where the kernel has a uid of its own (io belongs to
        root then); in a user namespace the kernel owns io and could undo it (INSTRUCTORS.md)."""
        if self.lockable:
            os.chmod(self.io, 0o750 if self.uid is not None else 0o500)

    def release(self) -> None:
        """The kernel is gone: let a grader that is not root tidy io up (root needs no leave)."""
        if self.lockable and os.geteuid() != 0:
            os.chmod(self.io, 0o700)


# ---------------------------------------------------------------- bubblewrap

def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """None when bubblewrap can build the grading sandbox here; otherwise what stops it."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap is Linux-only, and this is {sys.platform}"
    if bwrap_path() is None:
        return "bubblewrap (`bwrap`) is not installed"
    if shutil.which("prlimit") is None:
        return "prlimit (util-linux), which sets the sandbox's resource limits, is not installed"
    errors = []
    for user_namespace in _user_namespace_choices():
        problem = _probe(user_namespace)
        if problem is None:
            _USER_NAMESPACE[0] = user_namespace
            return None
        errors.append(problem)
    return (f"bubblewrap is installed but cannot create the sandbox here ({errors[-1][:300]}); user "
            "namespaces may be disabled (sysctl kernel.unprivileged_userns_clone, or an AppArmor "
            "restriction on Ubuntu 24.04 and later), or a container forbids them")


_USER_NAMESPACE = [True]  # decided by bwrap_problem(): root without CAP_SYS_ADMIN (a container) needs one too


def _user_namespace_choices() -> list[bool]:
    """Root first tries a sandbox without a user namespace (then the kernel gets a uid of its own)."""
    return [False, True] if os.geteuid() == 0 else [True]


def _probe(user_namespace: bool) -> str | None:
    argv = [bwrap_path(), *_namespaces(user_namespace), *_system_binds(), "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", SANDBOX_TMP, "--", "/bin/sh", "-c", "exit 0"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap could not start ({type(err).__name__}: {err})"
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit status {done.returncode}")


def _namespaces(user_namespace: bool | None = None) -> list[str]:
    args = ["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "tlgrade"]
    if _USER_NAMESPACE[0] if user_namespace is None else user_namespace:
        args.append("--unshare-user")
        if os.geteuid() == 0:  # root in a container: at least not root inside (nobody)
            args += ["--uid", "65534", "--gid", "65534"]
    return args


def drops_to_own_uid() -> bool:
    """Whether each kernel runs as a uid of its own (the grader is root, no user namespace needed)."""
    return bwrap_problem() is None and os.geteuid() == 0 and not _USER_NAMESPACE[0]


def _system_binds() -> list[str]:
    """The system's programs and libraries, read-only (merged-/usr links kept as links)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for path in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/passwd", "/etc/group",
                 "/etc/nsswitch.conf", "/etc/localtime", "/etc/fonts", "/etc/alternatives"):
        args += ["--ro-bind-try", path, path]
    return args


def python_roots(package: Path) -> list[Path]:
    """The folders the kernel's Python needs: the interpreter's prefixes, site-packages, this package."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  os.path.dirname(os.path.realpath(sys.executable)), str(package)}
    candidates.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        candidates.add(site.getusersitepackages())
    roots = sorted({Path(os.path.realpath(p)) for p in candidates if p and os.path.isdir(p)},
                   key=lambda p: len(p.parts))
    kept: list[Path] = []
    for root in roots:  # a folder inside one already bound needs no bind of its own
        if not any(root == k or k in root.parents for k in kept):
            kept.append(root)
    for link in {sys.prefix, sys.base_prefix, package}:  # keep paths as Python sees them (symlinked venvs)
        link = Path(link).absolute()
        if link != Path(os.path.realpath(link)) and link not in kept:
            kept.append(link)
    return kept


def bwrap_argv(io: Path, package: Path, hidden: list[Path], limits: Limits, cpu_seconds: float | None,
               uid: int | None, shared_cache: Path | None = None) -> list[str]:
    """The bubblewrap command line that runs one kernel (``{connection_file}`` left to fill);
    ``shared_cache``, a feature folder, appears read-only at ``SHARED_CACHE/features``."""
    args = [bwrap_path(), *_namespaces(), *_system_binds()]
    # The private /tmp first: the environment and the package may live under /tmp (a clone there, a CI
    # checkout), and a tmpfs mounted after their binds would hide them.
    args += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(limits.tmp_size), "--tmpfs", SANDBOX_TMP,
             "--perms", "1777", "--dir", f"{SANDBOX_TMP}/work", "--perms", "1777", "--dir", f"{SANDBOX_TMP}/home"]
    made = {Path("/"), Path(SANDBOX_TMP)}
    roots = python_roots(package)
    args += _parents(roots, made)
    for root in roots:
        real = os.path.realpath(root)
        if Path(root) != Path(real):
            args += ["--symlink", real, str(root)] if any(Path(real) == r for r in roots) else \
                    ["--ro-bind", real, str(root)]
        else:
            args += ["--ro-bind", str(root), str(root)]
    for path in hidden:  # folders with answers that a bound root happens to contain
        path = Path(os.path.realpath(path))
        if path.is_dir() and any(r == path or r in path.parents for r in map(Path, roots)):
            args += ["--tmpfs", str(path)]
    if shared_cache is not None:
        inside = Path(SHARED_CACHE) / "features"
        args += [*_parents([inside], made), "--ro-bind", os.path.realpath(shared_cache), str(inside)]
    args += [*_parents([io], made), "--bind", str(io), str(io), "--chdir", f"{SANDBOX_TMP}/work"]
    if uid is not None:  # the launcher caps /tmp's files (a remount), then drops to uid: every capability goes
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SYS_ADMIN"]
    return [*args, "--", *_launcher(limits, cpu_seconds, uid, io)]


def _parents(paths, made=None) -> list[str]:
    """Make the parents of ``paths`` readable by the sandbox's user (bwrap would make them 0700); ``made``
    (updated) holds the folders already made."""
    made, args = (made if made is not None else {Path("/")}), []
    for path in paths:
        for parent in reversed(Path(path).parents):
            if parent not in made:
                made.add(parent)
                args += ["--perms", "0755", "--dir", str(parent)]
    return args


PRLIMIT_OPTIONS = {"RLIMIT_AS": "--as", "RLIMIT_NPROC": "--nproc", "RLIMIT_FSIZE": "--fsize",
                   "RLIMIT_NOFILE": "--nofile", "RLIMIT_CORE": "--core", "RLIMIT_CPU": "--cpu"}


def limits_prefix(limits: Limits, cpu_seconds: float | None) -> list[str]:
    """``prlimit --as=N ... --`` (util-linux): the rlimits, soft and hard, that the kernel and all it starts
    inherit; empty where there is no prlimit (not Linux), so that the package imports no Unix-only module."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return []
    return [prlimit, *(f"{PRLIMIT_OPTIONS[name]}={int(value)}" for name, value in limits.rlimits(cpu_seconds).items()
                       if value is not None), "--"]


def _launcher(limits: Limits, cpu_seconds: float | None, uid: int | None, io: Path) -> list[str]:
    config = {"uid": uid, "connection_file": str(io / "kernel.json"), "sandboxed": True,
              "tmp": {"path": SANDBOX_TMP, "size": limits.tmp_size, "files": limits.tmp_files}}
    launch = Path(__file__).with_name("_launch.py")
    return [*limits_prefix(limits, cpu_seconds), sys.executable, "-I", "-S", str(launch),
            json.dumps(config, separators=(",", ":")), "--", *_kernel_argv(str(io / "kernel.json"))]


def _kernel_argv(connection_file: str = "{connection_file}") -> list[str]:
    return [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file]


def custom_argv(template: str, io: Path) -> list[str]:
    """A kernel command of yours: ``template`` is split like a shell line, then ``{kernel}`` becomes
    the kernel's own command (``python -m ipykernel_launcher -f <connection file>``) and ``{python}``,
    ``{io}``, ``{connection_file}`` become those paths. The command must make ``{io}`` visible at the
    same path (the kernel's sockets and evidence live there)."""
    values = {"python": sys.executable, "io": str(io), "connection_file": str(io / "kernel.json")}
    argv: list[str] = []
    for token in shlex.split(template):
        if token == "{kernel}":
            argv += _kernel_argv(values["connection_file"])
        else:
            for name, value in values.items():
                token = token.replace("{" + name + "}", value)
            argv.append(token)
    if not any("ipykernel" in a for a in argv):
        raise ValueError("The kernel command must start the kernel: put `{kernel}` where "
                         "`python -m ipykernel_launcher -f CONNECTION_FILE` goes.")
    return argv


# ---------------------------------------------------------------- one kernel's plan

def kernel_env(sandboxed: bool, home: str, read_only_cache: str | None = None) -> dict:
    """The kernel's environment: a short list, never the grader's own variables (tokens, keys).
    ``read_only_cache``: a feature cache the kernel reads but never writes (``features.py``)."""
    keep = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "COMSPEC", "PATHEXT", "WINDIR",
            "TEMP", "TMP", "TLCOURSE_STATIC")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONHASHSEED="0",
               TQDM_DISABLE="1", PYTHONDONTWRITEBYTECODE="1", HOME=home,
               IPYTHONDIR=f"{home}/ipython", MPLCONFIGDIR=f"{home}/matplotlib",
               XDG_CACHE_HOME=f"{home}/cache", TORCH_HOME=f"{home}/torch", TLCOURSE_CACHE=f"{home}/tlcourse")
    if read_only_cache:
        env["TLCOURSE_READ_ONLY_CACHE"] = read_only_cache
    if sandboxed:
        env.update(TMPDIR=SANDBOX_TMP, PATH=env.get("PATH", "/usr/bin:/bin"))
    else:
        env.setdefault("PATH", os.defpath)
    return env


def grader_feature_cache() -> Path | None:
    """The grader's own feature folder (``tlcourse.cache_dir()/features``), when there is one."""
    from ..utils import cache_dir

    folder = cache_dir() / "features"
    return folder if folder.is_dir() else None


def plan_kernel(sandbox: Sandbox, kind: str, workdir: Path, package: Path, hidden: list[Path],
                cpu_seconds: float | None, index: int = 0) -> KernelPlan:
    """Make ``workdir/io`` (and, bare, ``workdir/home``) and return how to start the kernel there."""
    io = workdir / "io"
    io.mkdir(mode=0o700)
    shared = grader_feature_cache() if sandbox.share_feature_cache else None
    if kind == "none":
        home = workdir / "home"
        home.mkdir()
        argv = _kernel_argv(str(io / "kernel.json"))
        argv = [*limits_prefix(sandbox.limits, cpu_seconds), *argv]  # limits still apply where prlimit exists
        return KernelPlan(argv, kernel_env(False, str(home), shared and str(shared.parent)), str(home), io,
                          transport="tcp", interrupt_mode="signal", sandboxed=False)
    if kind == "command":
        return KernelPlan(custom_argv(sandbox.command, io), kernel_env(True, f"{SANDBOX_TMP}/home"),
                          str(io), io)
    uid = UID_BASE + index if drops_to_own_uid() else None
    if uid is not None:  # io stays root's; the kernel's group may write there only while it starts
        os.chown(io, -1, uid)
    argv = bwrap_argv(io, package, hidden, sandbox.limits, cpu_seconds, uid, shared)
    return KernelPlan(argv, kernel_env(True, f"{SANDBOX_TMP}/home", shared and SHARED_CACHE), str(io), io,
                      uid=uid, lockable=True)
