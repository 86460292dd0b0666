"""llem's Hydra plugins: the study sweeper (`hydra/sweeper=llem`) and the local launcher
(`hydra/launcher=local`). Hydra discovers them through the `hydra_plugins` namespace."""
