"""Before Accelerate starts: a process other than the main one checks that the main process answers.

A process of rank > 0 joins the main process at MASTER_ADDR:MASTER_PORT. Where nothing listens
there (a wrong `--main_process_ip`, a closed port, machine 0 not started), torch's
`init_process_group` waits up to 30 minutes and ends in a traceback. `wait_for_main_process` opens a
plain TCP connection first, retrying until `--connect-timeout`, and stops with one line naming the
address and port.

Under `accelerate launch --num_machines N` the machine's launcher (torchrun's agent) makes the same
wait before this script starts, for 600 s by default; `--rdzv_conf timeout=S` bounds it (README,
"Several processes and machines"). The check here then finds the main process at once.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from accelerate.utils import get_cpu_distributed_information

from .errors import TrainingInputError

logger = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # between connection attempts
ATTEMPT_SECONDS = 5.0  # the longest single attempt (an address that drops packets never refuses)


def main_process_address() -> tuple[str, int] | None:
    """(MASTER_ADDR, MASTER_PORT) when this process is one of several and not the main one, else None.

    The rank and world size are read as Accelerate reads them (torchrun's RANK and WORLD_SIZE, or
    MPI's). Every rank > 0 checks, on machine 0 too: without a launcher's agent, rank 0 itself opens
    the port, and the others wait for it just the same.
    """
    information = get_cpu_distributed_information()
    address, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if information.world_size < 2 or information.rank == 0 or not address or not port:
        return None
    if not port.isdigit():
        raise TrainingInputError(f"MASTER_PORT={port!r} is not a port number; pass a number to --main_process_port")
    return address, int(port)


def wait_for_main_process(timeout: float) -> None:
    """Return once a TCP connection to the main process opens; `TrainingInputError` when none opens
    within `timeout` seconds. Nothing to do for the main process or a single one."""
    where = main_process_address()
    if where is None:
        return
    address, port = where
    deadline = time.monotonic() + timeout
    logger.info("connecting to the main process at %s:%d (waiting up to %g s)", address, port, timeout)
    while True:
        attempt = min(ATTEMPT_SECONDS, max(deadline - time.monotonic(), 0.1))
        try:
            with socket.create_connection((address, port), timeout=attempt):
                return
        except OSError as error:  # refused, unreachable, timed out, an unknown host name
            reason = error.strerror or str(error) or type(error).__name__
        if time.monotonic() + RETRY_SECONDS >= deadline:
            break
        time.sleep(RETRY_SECONDS)
    raise TrainingInputError(
        f"cannot reach the main process at {address}:{port} within {timeout:g} s ({reason.lower()}): is "
        "--main_process_ip (MASTER_ADDR) the address of machine 0, is its --main_process_port (MASTER_PORT) "
        "open, and did machine 0 start?"
    )
