from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class LlemSweeperConf:
    _target_: str = "hydra_plugins.llem_plugins.sweeper.LlemSweeper"
    max_batch_size: Optional[int] = 1
    params: Optional[dict[str, str]] = None


@dataclass
class LlemLocalLauncherConf:
    _target_: str = "hydra_plugins.llem_plugins.launcher.LlemLocalLauncher"


ConfigStore.instance().store(group="hydra/sweeper", name="llem", node=LlemSweeperConf, provider="llem")
ConfigStore.instance().store(group="hydra/launcher", name="local", node=LlemLocalLauncherConf, provider="llem")
