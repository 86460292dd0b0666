"""What llem records about the machine a job ran on: the environment snapshot every result
carries (``snapshot``) and the Slurm facts of its job (``cluster``)."""
