import { useEffect, useMemo, useState } from "react";
import { FILTER_LABELS, filterOptions } from "../data/filter";
import type { Row } from "../data/types";
import { FILTER_KEYS, formatHash, update, type FilterKey, type ViewState } from "../data/urlstate";
import { navigate } from "../router";

/** The search box and one group of checkboxes per filter. Every change goes into the URL. */
export function Filters({ rows, state }: { rows: Row[]; state: ViewState }) {
  const options = useMemo(() => Object.fromEntries(FILTER_KEYS.map((k) => [k, filterOptions(rows, k)])) as
    Record<FilterKey, ReturnType<typeof filterOptions>>, [rows]);
  const [text, setText] = useState(state.q);
  useEffect(() => setText(state.q), [state.q]);
  const active = FILTER_KEYS.some((k) => state.filters[k].length > 0) || state.q !== "";

  function toggle(key: FilterKey, value: string, on: boolean) {
    const cur = state.filters[key];
    const next = on ? [...cur, value] : cur.filter((v) => v !== value);
    navigate(formatHash(update(state, { filters: { ...state.filters, [key]: next } })));
  }

  return (
    <div className="filters" data-testid="filters">
      <form role="search" className="search" onSubmit={(ev) => ev.preventDefault()}>
        <label htmlFor="search">Search</label>
        <input id="search" type="search" value={text} autoComplete="off" spellCheck={false}
          placeholder="model, backend, GPU, study, job id"
          onChange={(ev) => {
            setText(ev.target.value);
            // typing replaces the history entry: Back leaves the search, not one keystroke
            navigate(formatHash(update(state, { q: ev.target.value })), true);
          }} />
      </form>
      <div className="filter-groups">
        {FILTER_KEYS.map((k) => {
          const opts = options[k];
          const chosen = new Set(state.filters[k]);
          // a value in the URL that no row has (a link from another data set) stays visible, so it can be removed
          const stale = state.filters[k].filter((v) => !opts.some((o) => o.value === v));
          return (
            <details key={k} className="filter" open={chosen.size > 0 || undefined}>
              <summary>
                {FILTER_LABELS[k]}{chosen.size ? ` (${chosen.size})` : ""}
              </summary>
              <fieldset>
                <legend className="sr-only">{FILTER_LABELS[k]}</legend>
                {opts.map((o) => (
                  <label key={o.value} className="check">
                    <input type="checkbox" name={k} value={o.value} checked={chosen.has(o.value)}
                      onChange={(ev) => toggle(k, o.value, ev.target.checked)} />
                    <span className="opt">{o.label}</span> <span className="count">{o.count}</span>
                  </label>
                ))}
                {stale.map((v) => (
                  <label key={`stale-${v}`} className="check">
                    <input type="checkbox" name={k} value={v} checked onChange={() => toggle(k, v, false)} />
                    <span className="opt">{v || "(none)"}</span> <span className="count">0</span>
                  </label>
                ))}
              </fieldset>
            </details>
          );
        })}
        <a className={`button${active ? "" : " disabled"}`} aria-disabled={!active || undefined}
          href={formatHash(update(state, { q: "", filters: { study: [], gpu: [], backend: [], precision: [], model: [] } }))}>
          Clear filters
        </a>
      </div>
    </div>
  );
}
