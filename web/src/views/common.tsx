// Small pieces every view uses. Every string from a result is rendered as a React text child or
// attribute value, which React escapes: nothing here (or anywhere in the site) inserts HTML.

import type { ReactNode } from "react";
import { energyMissingReason } from "../data/columns";
import { plainValue } from "../data/flatten";
import { fmtPlusMinus, fmtWithCi, isMissing } from "../data/format";
import type { Metric, Row } from "../data/types";
import { formatHash, type ViewState } from "../data/urlstate";

export function jobHref(state: ViewState, key: string): string {
  return formatHash({ ...state, view: "job", job: key });
}

export function Badge({ kind, title, children }: { kind: string; title: string; children: ReactNode }) {
  return <span className={`badge badge-${kind}`} title={title}>{children}</span>;
}

export const ESTIMATED_TITLE = "estimated energy (e.g. CodeCarbon's model of CPU and RAM power), not read from a " +
  "hardware energy counter: label it when you publish it";

/** The labels an entry must carry wherever it appears: synthetic data, estimated energy, a
 * quality score from a model with random weights. */
export function EntryBadges({ row }: { row: Row }) {
  const e = row.entry;
  return (
    <>
      {e.synthetic ? <Badge kind="synthetic" title={e.synthetic_reason || "synthetic test data: not a measurement"}>synthetic</Badge> : null}
      {e.energy_estimated ? <Badge kind="estimated" title={ESTIMATED_TITLE}>estimated</Badge> : null}
      {e.quality?.meaningless ? (
        <Badge kind="meaningless" title="quality evaluated on a model with random weights: the scores mean nothing">random weights</Badge>
      ) : null}
    </>
  );
}

/** A metric's value with its interval, or "n/a" with the reason it is missing. */
export function MetricValue({ m, digits = 4 }: { m: Metric | undefined; digits?: number }) {
  if (!m || isMissing(m.value)) {
    const why = m?.not_measured_reason || "not recorded";
    return <span className="na" title={why}>n/a</span>;
  }
  if (!isMissing(m.stderr)) {
    return <span className="num">{fmtPlusMinus(m.value, m.stderr, digits)}</span>;
  }
  const text = fmtWithCi(m.value, m.ci95_low, m.ci95_high, digits);
  const i = text.indexOf(" [");
  if (i < 0) return <span className="num">{text}</span>;
  return <span className="num">{text.slice(0, i)} <span className="ci">{text.slice(i + 1)}</span></span>;
}

/** The J/token cell: the value with its CI, or what happened instead ("not measured: <why>"). */
export function EnergyCell({ row, metric }: { row: Row; metric: string }) {
  const m = row.entry.metrics?.[metric];
  if (m && !isMissing(m.value)) {
    return (
      <>
        <MetricValue m={m} />
        {row.entry.energy_estimated ? <> <Badge kind="estimated" title={ESTIMATED_TITLE}>est.</Badge></> : null}
      </>
    );
  }
  const reason = metric === "energy_per_output_token_j" ? energyMissingReason(row) : m?.not_measured_reason;
  const failed = row.entry.status && row.entry.status !== "completed";
  return (
    <span className="missing" data-testid="not-measured">
      {failed ? "" : "not measured: "}{reason || "not recorded"}
    </span>
  );
}

/** A two-column table of key/value pairs (values as text). */
export function KeyValues({ items, label }: { items: [string, unknown][]; label: string }) {
  if (items.length === 0) return <p className="muted">none recorded</p>;
  return (
    <table className="kv" aria-label={label}>
      <tbody>
        {items.map(([k, v]) => (
          <tr key={k}>
            <th scope="row">{k}</th>
            <td>{plainValue(v)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
