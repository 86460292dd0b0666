import pytest


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory for commands that write into it (multirun/), as in tests/study/."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
