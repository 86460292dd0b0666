"""The study manifest's schema (llem.results.manifest) reads without the results tables."""
import subprocess
import sys


def test_the_manifest_schema_and_the_study_engine_import_without_pandas():
    # `llem run -m --dry-run` plans through llem.study, which reads this schema: pandas (a second
    # or more to import) must wait for the tables that need it
    code = ("import sys, llem.results.manifest, llem.study.engine, llem.cli.study; "
            "from llem import StudyResult; "
            "sys.exit(1 if 'pandas' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_the_package_still_exports_the_loaders_and_tables():
    from llem.results import LoadedResults, load_path, load_result, results_to_dataframe, study_to_dataframe
    from llem.results import load, table

    assert (LoadedResults, load_path, load_result) == (load.LoadedResults, load.load_path, load.load_result)
    assert (results_to_dataframe, study_to_dataframe) == (table.results_to_dataframe, table.study_to_dataframe)
