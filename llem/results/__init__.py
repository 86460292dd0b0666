"""Reading, tabulating, comparing, exporting and plotting llem results.

Everything here reads the two schemas (``llem.result.ExperimentResult`` and
``llem.results.manifest.StudyResult``) and never writes back into a job directory.
Carbon figures are derived from energy and kept in their own columns, never folded into energy.
"""

__all__ = ["LoadedResults", "load_path", "load_result", "results_to_dataframe", "study_to_dataframe"]

_FROM_LOAD = ("LoadedResults", "load_path", "load_result")
_FROM_TABLE = ("results_to_dataframe", "study_to_dataframe")


def __getattr__(name):
    # Loaded on first use: the code that plans and runs a study reads the manifest schema
    # (llem.results.manifest) and must not pay for pandas, which the tables import.
    if name in _FROM_LOAD:
        from llem.results import load as module
    elif name in _FROM_TABLE:
        from llem.results import table as module
    else:
        raise AttributeError(f"module 'llem.results' has no attribute {name!r}")
    return getattr(module, name)
