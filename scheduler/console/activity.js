// The timeline page (#/timeline): a window to look at (the last hour, day or week, or a range),
// the jobs' attempts in it and the summary charts of the same window. It follows the live state
// and redraws each second while something in it moves (a sliding window, a running attempt).
import * as api from "./api.js";
import { drawCharts } from "./charts.js";
import { fill, h } from "./dom.js";
import { PRESETS, bounds, groupsOf, ms, overlaps, parsePeriod, periodQuery } from "./period.js";
import { put, state, subscribe } from "./store.js";
import { patterns } from "./svg.js";
import { segments, timelineView } from "./timeline.js";

const CHART_MAX_PX = 560;
const LABELS = { hour: "Last hour", day: "Last day", week: "Last week" };

/** `YYYY-MM-DDTHH:MM:SS` in local time, as a datetime-local input takes it. */
function local(t) {
  const d = new Date(t - new Date(t).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 19);
}

export function activityView(main, query) {
  let period = parsePeriod(query);
  const timeline = timelineView();
  const charts = h("div", { class: "charts" });
  const said = h("p", { class: "notice error", role: "alert" });
  const from = h("input", { id: "period-from", type: "datetime-local", step: "1" });
  const to = h("input", { id: "period-to", type: "datetime-local", step: "1" });
  const choice = (value, text) => h("label", { class: "choice" },
    h("input", { type: "radio", name: "period", value, checked: (period.last ?? "range") === value,
      onchange: () => choose(value) }), text);
  const range = h("form", { class: "range", id: "period-range", onsubmit: (event) => {
    event.preventDefault();
    const [a, b] = [Date.parse(from.value), Date.parse(to.value)];
    if (!(a < b)) {
      fill(said, "The range needs a start before its end.");
      return;
    }
    fill(said);
    setPeriod({ from: a, to: b });
  } },
  h("div", { class: "field" }, h("label", { for: "period-from" }, "From"), from),
  h("div", { class: "field" }, h("label", { for: "period-to" }, "To"), to),
  h("button", { type: "submit" }, "Show range"));

  function choose(value) {
    if (value === "range") {
      const [start, end] = bounds(period, Date.now());
      from.value = local(start);
      to.value = local(end);
      range.hidden = false;
      return;
    }
    range.hidden = true;
    setPeriod({ last: value });
  }

  function setPeriod(next) {
    period = next;
    // The address keeps the window (a link shows the same), without a new page.
    history.replaceState(null, "", `#/timeline?${periodQuery(period)}`);
    render();
  }

  fill(main,
    h("h2", { tabindex: "-1" }, "Timeline"),
    patterns(),
    h("fieldset", { class: "period" }, h("legend", {}, "Window"),
      h("div", { class: "choices" }, Object.keys(PRESETS).map((key) => choice(key, LABELS[key])),
        choice("range", "Range")),
      range),
    said,
    timeline.el,
    h("section", { "aria-labelledby": "charts-heading" },
      h("h3", { id: "charts-heading" }, "Summary"), charts));
  if (period.last) range.hidden = true;
  else [from.value, to.value] = [local(period.from), local(period.to)];

  const asked = new Map(); // job name -> the `updated` its attempts were read again for
  let moving = false;
  let drawn = 0; // when the page was last drawn
  let pixelMs = 0; // the time one pixel of the timeline stands for

  function render() {
    const now = Date.now();
    const [start, end] = bounds(period, now);
    const groups = [];
    for (const group of groupsOf(state)) {
      const jobs = group.jobs.filter((entry) => overlaps(entry.job, start, end, now));
      if (jobs.length) groups.push({ ...group, jobs });
    }
    timeline.render(groups, start, end, now);
    const jobs = groups.flatMap((group) => group.jobs.map((entry) => entry.job));
    const width = Math.min(CHART_MAX_PX, charts.clientWidth || main.clientWidth);
    drawCharts(charts, jobs, start, end, width);
    moving = Boolean(period.last) || jobs.some((job) => !job.ended);
    drawn = now;
    pixelMs = (end - start) / Math.max(1, main.clientWidth);
    for (const group of groups) for (const entry of group.jobs) reread(entry, now);
  }

  /** The events tell of a job's status, not always of its new attempt: a running job whose
   *  attempt is not known yet is read again, once for each change of it. */
  function reread(entry, now) {
    const { job } = entry;
    if (!segments(job, now).attempts.some((a) => a.estimated)) return;
    if (asked.get(job.name) === job.updated) return;
    asked.set(job.name, job.updated);
    api.get(entry.target).then((fresh) => {
      if (ms(fresh.updated) >= ms(job.updated)) put(entry.target, fresh);
    }, () => {});
  }

  render();
  const unsubscribe = subscribe(render);
  // Each second, or less often when a second is less than a pixel (a week's window).
  const ticking = setInterval(() => moving && Date.now() - drawn >= pixelMs && render(), 1000);
  let width = main.clientWidth;
  const resized = new ResizeObserver(() => {
    if (main.clientWidth === width) return;
    width = main.clientWidth;
    render();
  });
  resized.observe(main);
  return () => { unsubscribe(); clearInterval(ticking); resized.disconnect(); };
}
