import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def second_venv(tmp_path_factory) -> Path:
    """A second interpreter (a real venv) that imports this checkout's llem and its deps.

    A ``.pth`` line running ``site.addsitedir`` makes the current environment's packages
    (including the editable llem) visible without installing anything.
    """
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = sysconfig.get_paths()["purelib"]
    out = subprocess.run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    Path(out, "llem_parent.pth").write_text(f"import site; site.addsitedir({purelib!r})\n")
    return venv
