from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from hydra_plugins.llem_plugins import config  # noqa: F401  (registers the configs)


class LlemSweeper(BasicSweeper):
    def __init__(self, max_batch_size=1, params=None):
        super().__init__(max_batch_size=max_batch_size, params=params)
