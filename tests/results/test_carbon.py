"""Carbon is derived from energy, sourced, and kept out of the energy columns."""
import pandas as pd
import pytest

from llem.errors import ConfigError
from llem.results.carbon import (SHIPPED_INTENSITY, SHIPPED_SOURCE, add_carbon_columns, grams_co2e,
                                 grid_intensity)
from llem.results.load import load_path
from llem.results.table import loaded_to_dataframe


@pytest.fixture(scope="module")
def df(study_dir):
    return loaded_to_dataframe(load_path(study_dir))


def test_shipped_table_used_without_codecarbon():
    g = grid_intensity("FR", use_codecarbon=False)
    assert g.country == "FRA" and g.g_per_kwh == SHIPPED_INTENSITY["FRA"][2]
    assert g.source == SHIPPED_SOURCE and "2021" in g.source
    assert len(SHIPPED_INTENSITY) >= 30


def test_formula_and_pue():
    g = grid_intensity("USA", use_codecarbon=False)
    # 3.6 MJ = 1 kWh
    assert grams_co2e(3.6e6, g, 1.0) == pytest.approx(g.g_per_kwh)
    assert grams_co2e(3.6e6, g, 1.5) == pytest.approx(1.5 * g.g_per_kwh)
    assert grams_co2e(None, g) is None


def test_columns_are_separate_and_energy_unchanged(df):
    out = add_carbon_columns(df, "DEU", pue=1.3, use_codecarbon=False)
    pd.testing.assert_frame_equal(out[df.columns], df)
    measured = out[out["energy_j"].notna()]
    expected = measured["energy_j"].astype(float) / 3.6e6 * 1.3 * SHIPPED_INTENSITY["DEU"][2]
    assert list(measured["carbon_gco2e"].astype(float)) == pytest.approx(list(expected))
    unmeasured = out[out["energy_j"].isna()]
    assert unmeasured["carbon_gco2e"].isna().all()
    assert (unmeasured["carbon_not_computed_reason"] == "energy not measured").all()
    assert set(out["carbon_source"]) == {SHIPPED_SOURCE}


def test_user_intensity_and_bad_input(df):
    out = add_carbon_columns(df, None, intensity_g_per_kwh=100.0)
    assert set(out["carbon_source"]) == {"user-provided"}
    with pytest.raises(ConfigError, match="--carbon: no grid intensity for 'ATLANTIS'"):
        grid_intensity("ATLANTIS", use_codecarbon=False)
    with pytest.raises(ConfigError, match="--pue"):
        add_carbon_columns(df, "FRA", pue=0.5)


def test_auto_uses_configured_country_only_when_recorded(df):
    out = add_carbon_columns(df, "auto", use_codecarbon=False)
    with_result = out[out["country_iso_code"].notna()]
    assert set(with_result["carbon_country"]) == {"USA"}  # what the fixture configs name
    no_result = out[out["country_iso_code"].isna()]
    assert len(no_result) == 2
    assert (no_result["carbon_not_computed_reason"] == "no grid country recorded for this job").all()
    with pytest.raises(ConfigError, match="--carbon auto"):
        add_carbon_columns(df.drop(columns=["country_iso_code"]), "auto")
