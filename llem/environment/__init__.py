"""What llem records and reports about the machine: the environment snapshot every result
carries (``snapshot``), Slurm facts (``cluster``) and what this machine can run (``capabilities``,
behind ``llem config``)."""
