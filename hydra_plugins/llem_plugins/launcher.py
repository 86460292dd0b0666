from hydra._internal.core_plugins.basic_launcher import BasicLauncher

from hydra_plugins.llem_plugins import config  # noqa: F401


class LlemLocalLauncher(BasicLauncher):
    def __init__(self) -> None:
        super().__init__()
