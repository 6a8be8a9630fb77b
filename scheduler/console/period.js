// The window of time the timeline and the charts look at (the last hour, day or week, or a range
// the user gives), as it reads in the page's address (#/timeline?last=day, ?from=...&to=...),
// and the jobs of the live state that fall in it.
import { DAY_MS } from "./svg.js";

const HOUR_MS = 3_600_000;
export const PRESETS = { hour: HOUR_MS, day: DAY_MS, week: 7 * DAY_MS };

/** A period from the address' query: {last: "hour"|"day"|"week"} or {from, to} (ms). */
export function parsePeriod(query) {
  const params = new URLSearchParams(query ?? "");
  const from = Date.parse(params.get("from") ?? "");
  const to = Date.parse(params.get("to") ?? "");
  if (Number.isFinite(from) && Number.isFinite(to) && from < to) return { from, to };
  const last = params.get("last");
  return { last: last in PRESETS ? last : "hour" };
}

export function periodQuery(period) {
  if (period.last) return `last=${period.last}`;
  return `from=${new Date(period.from).toISOString()}&to=${new Date(period.to).toISOString()}`;
}

/** [start, end] in ms: a preset slides with `now`. */
export function bounds(period, now) {
  return period.last ? [now - PRESETS[period.last], now] : [period.from, period.to];
}

export const ms = (iso) => (iso ? Date.parse(iso) : null);

/** Every job of the live state with where it is shown: single jobs, and each batch with its
 *  jobs. `groups` are newest first (by creation), as the list; a batch's jobs in the API's
 *  order. */
export function groupsOf(state) {
  const groups = [];
  for (const job of state.jobs.values()) {
    groups.push({ batch: null, jobs: [entry(job, null)], created: job.created ?? "" });
  }
  for (const batch of state.batches.values()) {
    groups.push({
      batch, created: batch.created ?? "",
      jobs: (batch.jobStatuses ?? []).map((job) => entry(job, batch)),
    });
  }
  // Times have whole seconds only: within one, the API's order (oldest first) reversed.
  return groups.reverse().sort((a, b) => b.created.localeCompare(a.created));
}

function entry(job, batch) {
  const href = batch
    ? `#/batches/${encodeURIComponent(batch.name)}/jobs/${encodeURIComponent(job.name)}`
    : `#/jobs/${encodeURIComponent(job.name)}`;
  const target = batch ? { kind: "batchJob", batch: batch.name, name: job.name }
    : { kind: "job", name: job.name };
  return { job, batch, href, target };
}

/** Whether a job's life (creation to end, or now) meets [start, end]. */
export function overlaps(job, start, end, now) {
  const from = ms(job.created) ?? ms(job.started);
  if (from === null) return false;
  const to = ms(job.ended) ?? now;
  return from <= end && to >= start;
}
