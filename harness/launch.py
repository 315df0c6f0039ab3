"""Start a command from this small process and report the command's own peak RSS.

Linux puts the parent's memory into a child's ``ru_maxrss``: at ``exec`` the kernel keeps
the high-water mark of the address space being replaced, which for a child forked (or
vforked) from a test run holding an emulator is the test run's. Started from here, the
command's ``ru_maxrss`` can only include this interpreter's few MiB, below any tap's own.

    python -I -S launch.py REPORT_FD COMMAND...

Writes ``<pid>`` and then ``<ru_maxrss KiB> <wall seconds>`` as lines to ``REPORT_FD``, and
exits as the command did (the same code, or killed by the same signal). The command is
killed if this process dies first, so nothing outlives a killed run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    """Run ``argv[1:]``, report to fd ``argv[0]``; the command's exit status."""
    report_fd, command = int(argv[0]), argv[1:]
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(report_fd)
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    os.write(report_fd, f"{pid}\n".encode())
    for forwarded in (signal.SIGTERM, signal.SIGINT):
        signal.signal(forwarded, lambda number, _frame: os.kill(pid, number))
    _, status, usage = os.wait4(pid, 0)
    seconds = time.monotonic() - started
    os.write(report_fd, f"{usage.ru_maxrss} {seconds:.6f}\n".encode())
    os.close(report_fd)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        with contextlib.suppress(OSError):  # SIGKILL's disposition cannot be set
            signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
