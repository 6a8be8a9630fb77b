// The summary charts of a window: jobs started and ended per interval (stacked by status), the
// distribution of the ended jobs' durations with p50 and p95, and the failure reasons ranked.
// Each is counted by a pure function (the numbers the tables and the tests read) and drawn as
// SVG; each has a sentence and a table (or list) in words.
import { fill, h } from "./dom.js";
import { ms } from "./period.js";
import {
  OUTCOMES, clock, esc, outcomeOf, scale, span, stepFor, svg, ticks,
} from "./svg.js";

const CHART_PX = 180;
const PAD = { top: 12, right: 10, bottom: 26, left: 34 };
const MAX_INTERVALS = 24;
const MAX_BINS = 12;

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Jobs started and ended in [start, end] per interval: `intervals` of {from, started:
 *  {outcome: n}, ended: {...}}, counted by each job's status now. Intervals fall on whole
 *  steps (of local time), the first and last cut by the window. */
export function perInterval(jobs, start, end) {
  const step = stepFor(end - start, MAX_INTERVALS);
  const [first] = ticks(start - step, start, step).slice(-1);
  const intervals = [];
  for (let from = first; from <= end; from += step) {
    intervals.push({ from: Math.max(from, start), started: {}, ended: {} });
  }
  const put = (key, t, outcome) => {
    if (t === null || t < start || t > end) return;
    const counts = intervals[Math.floor((t - first) / step)][key];
    counts[outcome] = (counts[outcome] ?? 0) + 1;
  };
  for (const job of jobs) {
    const outcome = outcomeOf(job.status);
    put("started", ms(job.started), outcome);
    put("ended", ms(job.ended), outcome);
  }
  return { step, intervals };
}

/** The durations (ms) of jobs that ended in [start, end], with their p50 and p95 (nearest rank)
 *  and bins of a whole step. */
export function durations(jobs, start, end) {
  const values = jobs.filter((job) => {
    const ended = ms(job.ended);
    return job.started && ended !== null && ended >= start && ended <= end;
  }).map((job) => Math.max(0, ms(job.ended) - ms(job.started))).sort((a, b) => a - b);
  const rank = (q) => values[Math.max(0, Math.ceil(q * values.length) - 1)];
  const max = values.at(-1) ?? 0;
  const step = stepFor(max + 1, MAX_BINS);
  const bins = Array.from({ length: Math.floor(max / step) + 1 }, (_, i) => ({ from: i * step,
    count: 0 }));
  for (const value of values) bins[Math.floor(value / step)].count += 1;
  return { values, step, bins, p50: rank(0.5), p95: rank(0.95) };
}

/** Why an attempt failed, in few words: its exit code, or its reason (a time limit, a kill). */
export function failureReason(job) {
  const pod = [...(job.podStatuses ?? [])].reverse()
    .find((p) => outcomeOf(p.replicaStatus?.status) === "failed") ?? job.podStatuses?.at(-1);
  if (pod?.reason === "DeadlineExceeded") return "Time limit exceeded";
  if (pod?.reason === "OOMKilled") return "Out of memory (OOMKilled)";
  if (pod?.reason && pod.reason !== "Error") return pod.reason;
  if (pod?.exitCode) return `Exit code ${pod.exitCode}`;
  return job.message?.split(":")[0] || "No reason given";
}

/** Failed jobs that ended in [start, end] by reason, most first. */
export function failureReasons(jobs, start, end) {
  const counts = new Map();
  for (const job of jobs) {
    const ended = ms(job.ended);
    if (job.status !== "Failed" || ended === null || ended < start || ended > end) continue;
    const reason = failureReason(job);
    counts.set(reason, (counts.get(reason) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

const sum = (counts) => Object.values(counts).reduce((a, b) => a + b, 0);
const byOutcome = (counts) => OUTCOMES.filter(([k]) => counts[k])
  .map(([k, word]) => `${counts[k]} ${word.toLowerCase()}`).join(", ");

function total(intervals, key) {
  const counts = {};
  for (const interval of intervals) {
    for (const [k, n] of Object.entries(interval[key])) counts[k] = (counts[k] ?? 0) + n;
  }
  return counts;
}

function yAxis(y, max, width) {
  const step = Math.max(1, Math.ceil(max / 4));
  let out = "";
  for (let v = 0; v <= max; v += step) {
    out += `<line class="grid" x1="${PAD.left}" x2="${width - PAD.right}" y1="${y(v)}" ` +
      `y2="${y(v)}"/><text class="tick" x="${PAD.left - 5}" y="${y(v) + 4}" ` +
      `text-anchor="end">${v}</text>`;
  }
  return out;
}

/** Columns of stacked counts: `columns` of {label, counts: {outcome: n}}. */
function stackedColumns(columns, width, key, labelEvery) {
  const max = Math.max(1, ...columns.map((c) => sum(c.counts)));
  const y = scale(0, max, CHART_PX - PAD.bottom, PAD.top);
  const slot = (width - PAD.left - PAD.right) / Math.max(1, columns.length);
  let out = yAxis(y, max, width);
  columns.forEach((column, i) => {
    const x = PAD.left + i * slot + slot * 0.15;
    let base = 0;
    for (const [outcome] of OUTCOMES) {
      const n = column.counts[outcome] ?? 0;
      if (!n) continue;
      out += `<rect class="col o-${outcome}" data-chart="${key}" data-interval="${i}" ` +
        `data-outcome="${outcome}" data-count="${n}" x="${x.toFixed(1)}" ` +
        `y="${y(base + n).toFixed(1)}" width="${(slot * 0.7).toFixed(1)}" ` +
        `height="${(y(base) - y(base + n)).toFixed(1)}" fill="url(#fill-${outcome})"/>`;
      base += n;
    }
    if (i % labelEvery === 0) {
      out += `<text class="tick" x="${(x + slot * 0.35).toFixed(1)}" y="${CHART_PX - 8}" ` +
        `text-anchor="middle">${esc(column.label)}</text>`;
    }
  });
  return out;
}

function table(caption, heads, rows, id) {
  return h("details", { class: "alternative" }, h("summary", {}, `${caption} as a table`),
    h("div", { class: "scroll" }, h("table", { id },
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))))));
}

function chart(id, title, said, picture, alternative) {
  return h("figure", { class: "chart", id },
    h("figcaption", {}, h("h4", {}, title)),
    h("p", { class: "chart-summary" }, said),
    picture, alternative);
}

/** The charts of `jobs` (every job in the window) over [start, end], `width` px each at most. */
export function drawCharts(box, jobs, start, end, width) {
  const { step, intervals } = perInterval(jobs, start, end);
  const started = total(intervals, "started");
  const ended = total(intervals, "ended");
  const labelEvery = Math.max(1, Math.ceil(intervals.length / Math.floor(width / 56)));
  const flow = (key, noun) => {
    const counts = key === "started" ? started : ended;
    const said = `${plural(sum(counts), "job")} ${noun} in the window` +
      (sum(counts) ? `: ${byOutcome(counts)} (by status now), per ${span(step)}.` : ".");
    return chart(`chart-${key}`, `Jobs ${noun} per ${span(step)}`, said,
      svg({ width, height: CHART_PX, role: "img", "aria-label": said, class: "chart-svg" },
        stackedColumns(intervals.map((iv) => ({ label: clock(iv.from, step), counts: iv[key] })),
          width, key, labelEvery)),
      table(`Jobs ${noun} per interval`, ["From", ...OUTCOMES.map(([, w]) => w), "All"],
        intervals.map((iv) => [clock(iv.from, step),
          ...OUTCOMES.map(([k]) => String(iv[key][k] ?? 0)), String(sum(iv[key]))]),
        `table-${key}`));
  };

  const d = durations(jobs, start, end);
  const dSaid = d.values.length
    ? `${plural(d.values.length, "job")} ended in the window, taking ${span(d.values[0])} to ` +
      `${span(d.values.at(-1))}: p50 (the median) ${span(d.p50)}, p95 ${span(d.p95)}.`
    : "No job ended in the window.";
  const binLabel = (bin) => `${span(bin.from)} – ${span(bin.from + d.step)}`;
  const durationChart = chart("chart-durations", "Durations of ended jobs", dSaid,
    svg({ width, height: CHART_PX, role: "img", "aria-label": dSaid, class: "chart-svg" },
      histogram(d, width)),
    table("Durations", ["Duration", "Jobs"],
      d.bins.map((bin) => [binLabel(bin), String(bin.count)]), "table-durations"));

  const reasons = failureReasons(jobs, start, end);
  const failed = reasons.reduce((n, [, count]) => n + count, 0);
  const most = Math.max(1, ...reasons.map(([, n]) => n));
  const rSaid = failed ? `${plural(failed, "job")} failed in the window, for ` +
    `${plural(reasons.length, "reason")}; the most common: ${reasons[0][0]} (${reasons[0][1]}).`
    : "No job failed in the window.";
  const reasonChart = h("figure", { class: "chart", id: "chart-reasons" },
    h("figcaption", {}, h("h4", {}, "Failure reasons")),
    h("p", { class: "chart-summary" }, rSaid),
    reasons.length > 0 && h("ol", { class: "reasons" }, reasons.map(([reason, n]) =>
      h("li", { "data-count": String(n) },
        h("span", { class: "reason" }, reason),
        h("span", { class: "reason-bar" },
          svg({ width: 100, height: 12, viewBox: "0 0 100 12", preserveAspectRatio: "none",
            "aria-hidden": "true", focusable: "false" },
          `<rect class="o-failed" width="${(100 * n / most).toFixed(1)}" height="12" ` +
            `fill="url(#fill-failed)"/>`)),
        h("span", { class: "count" }, plural(n, "job"))))));

  fill(box, flow("started", "started"), flow("ended", "ended"), durationChart, reasonChart);
}

/** Columns of the durations' bins, and the p50 and p95 lines over them, labelled. */
function histogram(d, width) {
  const max = Math.max(1, ...d.bins.map((b) => b.count));
  const y = scale(0, max, CHART_PX - PAD.bottom, PAD.top + 26);
  const x = scale(0, d.bins.length * d.step, PAD.left, width - PAD.right);
  const labelEvery = Math.max(1, Math.ceil(d.bins.length / Math.floor(width / 64)));
  let out = yAxis(y, max, width);
  d.bins.forEach((bin, i) => {
    const x0 = x(bin.from);
    const w = x(bin.from + d.step) - x0;
    if (bin.count) {
      out += `<rect class="col o-succeeded" data-chart="durations" data-bin="${i}" ` +
        `data-count="${bin.count}" x="${(x0 + 1).toFixed(1)}" y="${y(bin.count).toFixed(1)}" ` +
        `width="${Math.max(1, w - 2).toFixed(1)}" height="${(y(0) - y(bin.count)).toFixed(1)}" ` +
        `fill="url(#fill-succeeded)"/>`;
    }
    if (i % labelEvery === 0) {
      out += `<text class="tick" x="${x0.toFixed(1)}" y="${CHART_PX - 8}" ` +
        `text-anchor="${i ? "middle" : "start"}">${esc(span(bin.from))}</text>`;
    }
  });
  if (d.values.length) {
    // Each mark at the middle of its value's bin, its label on a line of its own, on the side
    // with room for it.
    [["p50", d.p50], ["p95", d.p95]].forEach(([name, value], i) => {
      const px = x(Math.floor(value / d.step) * d.step + d.step / 2); // its bin's middle
      const text = `${name} ${span(value)}`;
      const room = text.length * 7 + 6;
      const right = px + room < width - PAD.right;
      out += `<line class="mark-${name}" data-mark="${name}" data-ms="${value}" ` +
        `x1="${px.toFixed(1)}" x2="${px.toFixed(1)}" y1="${PAD.top + 14 * i}" ` +
        `y2="${CHART_PX - PAD.bottom}"/><text class="mark-label" ` +
        `x="${(right ? px + 3 : px - 3).toFixed(1)}" y="${PAD.top + 8 + 14 * i}" ` +
        `text-anchor="${right ? "start" : "end"}">${esc(text)}</text>`;
    });
  }
  return out;
}
