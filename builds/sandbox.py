"""The sandbox a build runs in: a throwaway overlay of its build root under bubblewrap.

Each command is one process tree: `unshare` gives it a private mount
namespace, in which the overlay (the build root read-only below, the build's
own upper layer above) is mounted; bubblewrap then makes that overlay its root
and binds the build folder at `/build`, nothing else of the host. So the
mount disappears with the command, even when the worker is killed, and no
other task's files, the keyrings, the settings or the database are reachable.

Two kinds of commands:
- privileged (root in the sandbox, network shared): installing build
  dependencies with apt, with `/build` read-only;
- build (an unprivileged uid, every namespace unshared, so no network):
  everything that runs the artifact's own code.

Mounting the overlay needs root (CAP_SYS_ADMIN) in the worker, as upstream's
container runner needed it; the build's own code never has it.
"""

import os
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BUILD_MOUNT = "/build"
BUILD_USER = "builder"
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Where the sandbox root is mounted, in the command's own mount namespace (so every build
# uses the same path without seeing the others): a folder the build uid can reach, which
# the workspaces under the data root need not be.
MOUNT_POINT = Path("/run/fatbuildr-sandbox")

# Mounts the overlay ($1 lower, $2 upper, $3 work, $4 merged), binds the build folder ($5)
# at its /build, binds the whole at the mount point ($6), then runs the rest of the arguments.
_MOUNT_AND_RUN = (
    'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" '
    '&& mount --bind "$5" "$4/build" && mount --rbind "$4" "$6" && shift 6 && exec "$@"'
)


class SandboxError(Exception):
    """The sandbox cannot be set up (message for the task journal)."""


@dataclass(frozen=True)
class Sandbox:
    """One build root overlay, its layers under *place*, the build folder bound at /build."""

    root: Path
    place: Path
    build_dir: Path
    uid: int
    label: str = "sandbox"

    @property
    def upper(self) -> Path:
        return self.place / "upper"

    @property
    def merged(self) -> Path:
        return self.place / "merged"

    def prepare(self) -> None:
        """Make the layers, the mount points and the unprivileged user's entry."""
        for path in (self.root, self.place, self.build_dir):
            if "," in str(path) or ":" in str(path):
                # Separators of the overlay mount options.
                raise SandboxError(f"unusable path for an overlay: {path}")
        if not (self.root / "usr").is_dir():
            raise SandboxError(f"build root {self.root} is missing or incomplete")
        for folder in (self.upper, self.place / "work", self.merged, self.upper / BUILD_MOUNT[1:]):
            folder.mkdir(parents=True, exist_ok=True)
        etc = self.upper / "etc"
        etc.mkdir(exist_ok=True)
        # Tools (whoami, dpkg-buildpackage, rpmbuild) want a name for the build uid.
        _append_entry(
            self.root / "etc/passwd",
            etc / "passwd",
            f"{BUILD_USER}:x:{self.uid}:{self.uid}::{BUILD_MOUNT}:/bin/sh\n",
        )
        _append_entry(self.root / "etc/group", etc / "group", f"{BUILD_USER}:x:{self.uid}:\n")
        self.build_dir.mkdir(parents=True, exist_ok=True)
        MOUNT_POINT.mkdir(mode=0o755, exist_ok=True)

    def command(
        self,
        cmd: Sequence[str],
        *,
        privileged: bool = False,
        cwd: str = BUILD_MOUNT,
        env: Mapping[str, str] | None = None,
        read_only: Sequence[tuple[Path, str]] = (),
    ) -> list[str]:
        """The host command line running *cmd* inside the sandbox; *read_only* host folders
        are bound at the given places (privileged commands only)."""
        mount = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            _MOUNT_AND_RUN,
            "sh",
            str(self.root),
            str(self.upper),
            str(self.place / "work"),
            str(self.merged),
            str(self.build_dir),
            str(MOUNT_POINT),
        ]
        binds = []
        if privileged:
            binds = ["--ro-bind", str(MOUNT_POINT / BUILD_MOUNT[1:]), BUILD_MOUNT]
            for source, place in read_only:
                # bwrap would make a missing mount point's parents 0700, which apt's
                # unprivileged download methods cannot traverse: make them 0755 first.
                (self.upper / place.lstrip("/")).mkdir(mode=0o755, parents=True, exist_ok=True)
                binds += ["--ro-bind", str(source), place]
        elif read_only:
            raise SandboxError("host folders are only bound for privileged commands")
        bwrap = bwrap_command(
            MOUNT_POINT, cmd, privileged=privileged, cwd=cwd, env=env, binds=binds
        )
        if privileged:
            return mount + bwrap
        # bwrap itself runs as the build uid: the user namespace it makes maps only that uid.
        drop = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--"]
        return mount + drop + bwrap

    def describe(self, cmd: Sequence[str], *, privileged: bool = False) -> str:
        """How a sandboxed command shows in the journal (its whole command line is long)."""
        how = "as root, with network" if privileged else f"as {BUILD_USER}, no network"
        return f"{shlex.join(cmd)} (in {self.label}, {how})"

    def hand_over_build_dir(self) -> None:
        """Give the build folder to the build uid, without following any link in it."""
        for folder, dirs, files in os.walk(self.build_dir):
            os.chown(folder, self.uid, self.uid, follow_symlinks=False)
            for name in dirs + files:
                os.chown(os.path.join(folder, name), self.uid, self.uid, follow_symlinks=False)

    def discard(self) -> None:
        """Remove the overlay layers (the build folder stays, for inspection)."""
        shutil.rmtree(self.place, ignore_errors=True)


def bwrap_command(
    root: Path,
    cmd: Sequence[str],
    *,
    privileged: bool,
    cwd: str = "/",
    env: Mapping[str, str] | None = None,
    binds: Sequence[str] = (),
) -> list[str]:
    """bwrap running *cmd* in the tree *root*: as root with the network (privileged), or
    with every namespace unshared; a clean environment, private /tmp and /var/tmp."""
    inner_env = {"PATH": SANDBOX_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    inner_env["HOME"] = "/root" if privileged else BUILD_MOUNT
    inner_env["USER"] = inner_env["LOGNAME"] = "root" if privileged else BUILD_USER
    inner_env.update(env or {})
    args = ["bwrap", "--bind", str(root), "/", "--dev", "/dev", "--proc", "/proc"]
    args += ["--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777", "--tmpfs", "/var/tmp"]
    args += binds
    if privileged:
        args += ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--cap-add", "ALL"]
    else:
        args += ["--unshare-all"]
    args += ["--die-with-parent", "--new-session", "--chdir", cwd, "--clearenv"]
    for name, value in inner_env.items():
        args += ["--setenv", name, value]
    return [*args, "--", *cmd]


def _append_entry(source: Path, destination: Path, line: str) -> None:
    text = source.read_text() if source.is_file() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    destination.write_text(text + line)
