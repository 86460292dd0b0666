"""A tensor-parallel follower that ignores every way of being stopped short of SIGKILL: it takes
the stop broadcast and then sleeps, has no stdin watchdog and ignores SIGTERM. Tests start it in
place of ``python -m llem.backends.pytorch --tp-follower`` (``tensor_parallel.FOLLOWER_ARGS``)."""
import signal
import sys
import time

from llem.backends.pytorch import tensor_parallel
from llem.backends.pytorch.backend import PyTorchBackend

_broadcast = PyTorchBackend._broadcast


def _stubborn_broadcast(self, msg):
    got = _broadcast(self, msg)
    if got[0] == "stop":
        time.sleep(120)  # bounded: a lost test process must not leave it forever
    return got


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    PyTorchBackend._broadcast = _stubborn_broadcast
    tensor_parallel._watch_for_stop = lambda grace_s: None
    sys.exit(tensor_parallel._follower_main())
