"""Registers llem's sweeper and local launcher configs (typed in ``llem.config.launch``) with Hydra."""
from hydra.core.config_store import ConfigStore

from llem.config.launch import LlemLocalLauncherConf, LlemSweeperConf

ConfigStore.instance().store(group="hydra/sweeper", name="llem", node=LlemSweeperConf, provider="llem")
ConfigStore.instance().store(group="hydra/launcher", name="local", node=LlemLocalLauncherConf, provider="llem")
