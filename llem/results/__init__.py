"""Reading, tabulating, comparing, exporting and plotting llem results.

Everything here reads the two schemas (``llem.result.ExperimentResult`` and
``llem.study.manifest.StudyResult``) and never writes back into a job directory.
Carbon figures are derived from energy and kept in their own columns, never folded into energy.
"""
from llem.results.load import LoadedResults, load_path, load_result
from llem.results.table import results_to_dataframe, study_to_dataframe

__all__ = ["LoadedResults", "load_path", "load_result", "results_to_dataframe", "study_to_dataframe"]
