"""``python -m llem.backends.pytorch --tp-follower``: one tensor-parallel follower (rank > 0)."""
import os
import sys

from llem.backends.pytorch.tensor_parallel import _follower_main

if __name__ == "__main__" and "--tp-follower" in sys.argv:
    code = _follower_main()
    # skip interpreter teardown: NCCL/CUDA destructors can block after the work is done
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
