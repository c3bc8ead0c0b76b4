"""A Debian 12 booted with systemd as PID 1 in systemd-nspawn, for the system test.

The root file system is built once by ``build-rootfs.sh`` (cached); each run boots a
throw-away copy on an overlay, with the checkout bound read-only at ``/src``, its own
network namespace (loopback only: mosquitto and the BMS live inside), cgroup v2 as on a
Raspberry Pi and BPF device policies enforced. Commands run inside with ``nsenter``.

What it takes on this kind of machine (no systemd on the host):
``--register=no --keep-unit``; ``SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1`` for cgroup v2;
``SYSTEMD_SECCOMP=0`` and ``--capability=CAP_BPF,CAP_PERFMON`` so that the services'
``DevicePolicy=``/``DeviceAllow=`` are really enforced (without them systemd logs that BPF
firewalling is unsupported and silently skips the device rules).

    sudo python3 tests/system/container.py      boot one and open a shell in it
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent.parent


class BootError(Exception):
    """The container could not be built or booted; the message says why."""


def build_rootfs() -> Path:
    if os.geteuid() != 0:
        raise BootError("needs root (debootstrap, mount, systemd-nspawn)")
    for tool in ("debootstrap", "systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            raise BootError(f"{tool} is not installed (apt-get install debootstrap systemd-container util-linux)")
    result = subprocess.run([str(HERE / "build-rootfs.sh")], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BootError(f"building the root file system failed:\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


class Container:
    def __init__(self, lower: Path, workdir: Path | None = None) -> None:
        self.lower = lower
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="chargery-nspawn-"))
        self.upper, self.work, self.root = self.dir / "upper", self.dir / "work", self.dir / "root"
        for d in (self.upper, self.work, self.root):
            d.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid1: int | None = None

    # --- life cycle -------------------------------------------------------------------------

    def boot(self, timeout: float = 90) -> Container:
        if not os.path.ismount(self.root):
            options = f"lowerdir={self.lower},upperdir={self.upper},workdir={self.work}"
            mounted = subprocess.run(
                ["mount", "-t", "overlay", "overlay", "-o", options, str(self.root)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if mounted.returncode != 0:
                raise BootError(f"cannot mount the overlay root: {mounted.stderr.strip()}")
        env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1", "SYSTEMD_SECCOMP": "0"}
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the container
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit", "--private-network",
             "--capability=CAP_BPF,CAP_PERFMON", f"--directory={self.root}", "--machine=chargery-test",
             f"--bind-ro={CHECKOUT}:/src"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BootError(f"systemd-nspawn exited with {self.proc.returncode}:\n{self.console()[-3000:]}")
            self.pid1 = self._find_pid1()
            if self.pid1 is not None:
                state = self.run("systemctl is-system-running --wait", check=False, timeout=timeout)
                if state.stdout.strip() in ("running", "degraded"):
                    return self
                raise BootError(f"the system did not come up ({state.stdout.strip()}):\n{self.failed_units()}")
            time.sleep(0.2)
        raise BootError(f"no systemd in the container after {timeout:.0f} s:\n{self.console()[-3000:]}")

    def _find_pid1(self) -> int | None:
        """The container's PID 1: the process below systemd-nspawn that runs systemd."""
        assert self.proc is not None
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                for child in task.read_text().split():
                    try:
                        exe = os.readlink(f"/proc/{child}/exe")
                    except OSError:
                        continue
                    if exe.endswith("/systemd"):
                        return int(child)
                    todo.append(int(child))
        return None

    def poweroff(self, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.run("systemctl poweroff --no-block", check=False)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.pid1 = None

    def destroy(self) -> None:
        self.poweroff()
        if os.path.ismount(self.root):
            subprocess.run(["umount", "-l", str(self.root)], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- inside -----------------------------------------------------------------------------

    def run(
        self, command: str, *, check: bool = True, timeout: float = 120, user: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """``command`` in a shell inside the container (as root, or as ``user``)."""
        assert self.pid1 is not None, "not booted"
        inner = (
            ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "sh", "-c", command]
            if user
            else ["sh", "-c", command]
        )
        result = subprocess.run(
            ["nsenter", "-t", str(self.pid1), "-a", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
             "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", *inner],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(
                f"in the container: {command}\nexit {result.returncode}\n{result.stdout}{result.stderr}"
            )
        return result

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        self.run(
            f"install -D -m {mode:o} /dev/null {shlex.quote(path)} && cat > {shlex.quote(path)} <<'CHARGERY_EOF'\n{text}CHARGERY_EOF"
        )

    def console(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def failed_units(self) -> str:
        return self.run(
            "systemctl --failed --no-legend; journalctl -b -p warning --no-pager | tail -40", check=False
        ).stdout


def main() -> int:
    try:
        box = Container(build_rootfs()).boot()
    except BootError as exc:
        print(f"container: {exc}", file=sys.stderr)
        return 1
    print(f"booted; PID 1 is {box.pid1}. A shell inside (exit to power off):", file=sys.stderr)
    try:
        subprocess.run(["nsenter", "-t", str(box.pid1), "-a", "bash", "-l"], check=False)
    finally:
        box.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
