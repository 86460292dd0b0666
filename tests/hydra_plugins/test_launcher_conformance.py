"""Hydra's own launcher test suites, run against llem's local launcher."""
from __future__ import annotations

from pytest import mark

from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite


@mark.parametrize("launcher_name, overrides", [("local", [])])
class TestLlemLocalLauncher(LauncherTestSuite):
    pass


@mark.parametrize("task_launcher_cfg, extra_flags", [({}, ["-m", "hydra/launcher=local"])])
class TestLlemLocalLauncherIntegration(IntegrationTestSuite):
    pass



def test_a_job_killed_before_returning_still_carries_its_config(hydra_restore_singletons, tmp_path):
    """Whatever the job's process did, its JobReturn names the job's config, Hydra config and
    task name, so callbacks and sweepers that read job returns see which job failed."""
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext, RunMode

    def die(_cfg):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)

    loader = ConfigLoaderImpl(config_search_path=create_config_search_path("pkg://hydra.test_utils.configs"))
    cfg = loader.load_configuration("compose.yaml", overrides=["hydra/launcher=local", f"hydra.sweep.dir={tmp_path}",
                                                               "hydra.job.name=killed_app"],
                                    run_mode=RunMode.MULTIRUN)
    HydraConfig.instance().set_config(cfg)
    ctx = HydraContext(config_loader=loader, callbacks=Callbacks(cfg))
    launcher = Plugins.instance().instantiate_launcher(hydra_context=ctx, task_function=die, config=cfg)
    rets = launcher.launch([["foo=7"], ["foo=8"]], initial_job_idx=0)
    assert [r.status.name for r in rets] == ["FAILED", "FAILED"]
    assert "SIGKILL" in str(rets[0]._return_value)
    assert [r.cfg.foo for r in rets] == [7, 8]
    assert all(r.cfg.bar == 100 and "hydra" not in r.cfg for r in rets)
    assert all(r.hydra_cfg.hydra.job.name == "killed_app" and r.task_name == "killed_app" for r in rets)
