import pytest

from tests.results.results_fixtures import make_study, write_measured_job, write_real_job


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="session")
def study_dir_b(tmp_path_factory):
    # the same grid measured again, 20% hungrier: for compare
    return make_study(tmp_path_factory.mktemp("studyb"), name="synthetic-study-b", scale=1.2, extra_jobs=False,
                      timeseries=False)


@pytest.fixture(scope="session")
def real_job(tmp_path_factory):
    return write_real_job(tmp_path_factory.mktemp("real"))


@pytest.fixture(scope="session")
def measured_jobs(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs")
    return (write_measured_job(root, "a", j_per_token=0.5, seed=1),
            write_measured_job(root, "b", j_per_token=0.8, seed=2))
