"""Carbon: grams of CO2-equivalent from measured energy, grid carbon intensity and a PUE factor.

    gCO2e = energy_j / 3.6e6 [kWh] x PUE x intensity [gCO2e/kWh]

Carbon is *derived* from energy and lives in its own ``carbon_*`` columns and report sections; it
is never added into, or substituted for, an energy number. Where energy was not measured the
carbon figure is missing too (never 0).

Grid intensity comes from, in order:
1. a number the user gives (``intensity_g_per_kwh``), labelled "user-provided";
2. CodeCarbon's offline per-country table (``codecarbon/data/private_infra/global_energy_mix.json``)
   when the ``codecarbon`` package is installed;
3. the small table shipped below.

Shipped table: annual average carbon intensity of electricity *generation* in gCO2e/kWh for
2021, as published by Our World in Data ("Carbon intensity of electricity", compiled from Ember
and the Energy Institute Statistical Review of World Energy; CC BY 4.0), in the form CodeCarbon
redistributes it in ``global_energy_mix.json`` (its 2021 rows), rounded to whole grams. These are
national annual averages of generation, not of consumption (imports are not counted), and not
marginal or hourly figures; grids change year to year. Pass your own figure for anything that
matters more than an order of magnitude.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

from llem.errors import ConfigError

SHIPPED_SOURCE = ("Our World in Data, carbon intensity of electricity generation, 2021 "
                  "(Ember / Energy Institute; via CodeCarbon global_energy_mix.json), shipped with llem")
SHIPPED_YEAR = 2021
J_PER_KWH = 3.6e6

# ISO 3166 alpha-3 -> (alpha-2, name, gCO2e/kWh)
SHIPPED_INTENSITY: dict[str, tuple[str, str, float]] = {
    "ARE": ("AE", "United Arab Emirates", 462),
    "ARG": ("AR", "Argentina", 358),
    "AUS": ("AU", "Australia", 531),
    "AUT": ("AT", "Austria", 148),
    "BEL": ("BE", "Belgium", 157),
    "BRA": ("BR", "Brazil", 159),
    "CAN": ("CA", "Canada", 128),
    "CHE": ("CH", "Switzerland", 47),
    "CHL": ("CL", "Chile", 417),
    "CHN": ("CN", "China", 544),
    "COL": ("CO", "Colombia", 181),
    "CZE": ("CZ", "Czechia", 406),
    "DEU": ("DE", "Germany", 365),
    "DNK": ("DK", "Denmark", 221),
    "EGY": ("EG", "Egypt", 464),
    "ESP": ("ES", "Spain", 194),
    "FIN": ("FI", "Finland", 146),
    "FRA": ("FR", "France", 67),
    "GBR": ("GB", "United Kingdom", 268),
    "GRC": ("GR", "Greece", 353),
    "HUN": ("HU", "Hungary", 233),
    "IDN": ("ID", "Indonesia", 623),
    "IND": ("IN", "India", 637),
    "IRL": ("IE", "Ireland", 364),
    "ISL": ("IS", "Iceland", 29),
    "ISR": ("IL", "Israel", 548),
    "ITA": ("IT", "Italy", 341),
    "JPN": ("JP", "Japan", 479),
    "KEN": ("KE", "Kenya", 86),
    "KOR": ("KR", "South Korea", 458),
    "MEX": ("MX", "Mexico", 400),
    "MYS": ("MY", "Malaysia", 549),
    "NGA": ("NG", "Nigeria", 377),
    "NLD": ("NL", "Netherlands", 389),
    "NOR": ("NO", "Norway", 28),
    "NZL": ("NZ", "New Zealand", 132),
    "POL": ("PL", "Poland", 660),
    "PRT": ("PT", "Portugal", 219),
    "ROU": ("RO", "Romania", 256),
    "RUS": ("RU", "Russia", 360),
    "SAU": ("SA", "Saudi Arabia", 571),
    "SGP": ("SG", "Singapore", 488),
    "SWE": ("SE", "Sweden", 46),
    "THA": ("TH", "Thailand", 507),
    "TUR": ("TR", "Turkey", 430),
    "TWN": ("TW", "Taiwan", 573),
    "USA": ("US", "United States", 379),
    "VNM": ("VN", "Vietnam", 448),
    "ZAF": ("ZA", "South Africa", 716),
}

CARBON_COLUMNS = ["carbon_country", "carbon_intensity_g_per_kwh", "carbon_pue", "carbon_source",
                  "carbon_gco2e", "carbon_gco2e_per_output_token", "carbon_not_computed_reason"]


@dataclass(frozen=True)
class GridIntensity:
    country: str                 # ISO 3166 alpha-3, or the region label the user gave
    g_per_kwh: float
    source: str
    year: Optional[int] = None


def _codecarbon_table() -> Optional[dict]:
    """CodeCarbon's per-country table, read as a data file.

    The package is located without importing it: importing codecarbon probes GPUs and logs
    warnings, which a results command has no business doing.
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec("codecarbon")
        if spec is None or not spec.submodule_search_locations:
            return None
        for loc in spec.submodule_search_locations:
            path = Path(loc) / "data" / "private_infra" / "global_energy_mix.json"
            if path.is_file():
                return json.loads(path.read_text())
    except (OSError, ValueError, ImportError):
        return None  # unreadable: fall back to the shipped table
    return None


def _codecarbon_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("codecarbon")
    except PackageNotFoundError:
        return "(version unknown)"


def _normalise_country(code: str) -> str:
    c = code.strip().upper()
    if len(c) == 2:
        for a3, (a2, _, _) in SHIPPED_INTENSITY.items():
            if a2 == c:
                return a3
    return c


def grid_intensity(country: Optional[str] = None, *, intensity_g_per_kwh: Optional[float] = None,
                   use_codecarbon: bool = True) -> GridIntensity:
    """Carbon intensity for a country (ISO alpha-3 or alpha-2), or a user-given figure."""
    if intensity_g_per_kwh is not None:
        if not intensity_g_per_kwh >= 0:
            raise ConfigError(f"--carbon-intensity: {intensity_g_per_kwh!r} must be >= 0 gCO2e/kWh",
                              field="carbon-intensity", value=intensity_g_per_kwh, allowed=">= 0")
        return GridIntensity(country or "user", float(intensity_g_per_kwh), "user-provided")
    if not country:
        raise ConfigError("--carbon: a country code is needed; allowed: ISO alpha-3 (USA, GBR, FRA ...) or "
                          "alpha-2, or give --carbon-intensity G", field="carbon", value=country,
                          allowed="ISO 3166 country code")
    code = _normalise_country(country)
    if use_codecarbon:
        table = _codecarbon_table()
        if table and code in table and table[code].get("carbon_intensity") is not None:
            row = table[code]
            year = row.get("year")
            return GridIntensity(code, float(row["carbon_intensity"]),
                                 f"CodeCarbon {_codecarbon_version()} offline data (global_energy_mix.json, "
                                 f"{year or 'year not stated'})",
                                 int(year) if year else None)
    if code in SHIPPED_INTENSITY:
        return GridIntensity(code, float(SHIPPED_INTENSITY[code][2]), SHIPPED_SOURCE, SHIPPED_YEAR)
    raise ConfigError(f"--carbon: no grid intensity for {country!r}; allowed: ISO 3166 codes in the shipped table "
                      f"({', '.join(sorted(SHIPPED_INTENSITY))}) or CodeCarbon's, or give --carbon-intensity G",
                      field="carbon", value=country,
                      allowed=sorted(SHIPPED_INTENSITY))


def validate_pue(pue: float) -> float:
    if not (isinstance(pue, (int, float)) and pue >= 1.0):
        raise ConfigError(f"--pue: {pue!r} must be a number >= 1.0 (1.0 = no facility overhead)",
                          field="pue", value=pue, allowed=">= 1.0")
    return float(pue)


def grams_co2e(energy_j: Optional[float], grid: GridIntensity, pue: float = 1.0) -> Optional[float]:
    if energy_j is None or energy_j != energy_j:
        return None
    return energy_j / J_PER_KWH * validate_pue(pue) * grid.g_per_kwh


def add_carbon_columns(df: pd.DataFrame, country: Optional[str] = None, *, pue: float = 1.0,
                       intensity_g_per_kwh: Optional[float] = None, use_codecarbon: bool = True) -> pd.DataFrame:
    """A copy of ``df`` with ``carbon_*`` columns from raw measured energy (``energy_j``).

    Raw energy is used because the grid supplies the idle baseline too; the adjusted figure
    answers a different question. ``country="auto"`` takes each row's configured
    ``energy.country_iso_code`` when the table carries it, else fails: guessing a grid is worse
    than asking.
    """
    from llem.results.table import coerce

    pue = validate_pue(pue)
    out = df.copy()
    if country == "auto":
        # the grid each job's config named (energy.country_iso_code); rows without one get no figure
        if "country_iso_code" not in out.columns:
            raise ConfigError("--carbon auto: these results do not record energy.country_iso_code; "
                              "name a country (e.g. --carbon USA)", field="carbon", value="auto",
                              allowed="ISO 3166 country code")
        countries = [None if pd.isna(v) else str(v) for v in out["country_iso_code"]]
    else:
        countries = [country] * len(out)
    cache: dict = {}
    cols = {c: [] for c in CARBON_COLUMNS}
    for i, c in enumerate(countries):
        if c is None and intensity_g_per_kwh is None:
            for k in CARBON_COLUMNS:
                cols[k].append(None)
            cols["carbon_not_computed_reason"][-1] = "no grid country recorded for this job"
            cols["carbon_pue"][-1] = pue
            continue
        if c not in cache:
            cache[c] = grid_intensity(c, intensity_g_per_kwh=intensity_g_per_kwh, use_codecarbon=use_codecarbon)
        g = cache[c]
        e = out["energy_j"].iloc[i] if "energy_j" in out.columns else None
        ept = out["energy_per_output_token_j"].iloc[i] if "energy_per_output_token_j" in out.columns else None
        e = None if e is None or pd.isna(e) else float(e)
        ept = None if ept is None or pd.isna(ept) else float(ept)
        cols["carbon_country"].append(g.country)
        cols["carbon_intensity_g_per_kwh"].append(g.g_per_kwh)
        cols["carbon_pue"].append(pue)
        cols["carbon_source"].append(g.source)
        cols["carbon_gco2e"].append(grams_co2e(e, g, pue))
        cols["carbon_gco2e_per_output_token"].append(grams_co2e(ept, g, pue))
        cols["carbon_not_computed_reason"].append(None if e is not None else "energy not measured")
    for c, v in cols.items():
        out[c] = v
    return coerce(out)
