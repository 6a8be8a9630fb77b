// The timeline: one row per job (a batch's jobs under their batch's row), a bar per attempt from
// its start to its end (a live one to now, so it grows), a thin line while the job waited. One
// listener and one tooltip element serve every bar; the table under it says the same in words.
import { ENDED, fill, h, time } from "./dom.js";
import { ms } from "./period.js";
import {
  OUTCOMES, OUTCOME_WORD, clock, esc, legend, outcomeOf, scale, span, stepFor, svg, ticks,
} from "./svg.js";

const ROW_PX = 22;
const BAR_PX = 14;
const AXIS_PX = 26;
const GAP_PX = 8;
const LABEL_FONT_PX = 12;

/** A job's attempts and waits as times (ms): each attempt from its start to its end (null while
 *  it runs), and each wait before an attempt (or until now for a job still waiting). A running
 *  job whose attempt the events did not carry yet has one from its start, `estimated`. */
export function segments(job, now) {
  const jobEnd = ms(job.ended);
  const attempts = (job.podStatuses ?? []).map((pod) => {
    const start = ms(pod.startTime) ?? ms(pod.created);
    const end = ms(pod.endTime) ?? jobEnd;
    const status = pod.replicaStatus?.status ?? (end === null ? "Running" : job.status);
    return { pod, start, end, outcome: outcomeOf(end === null ? status : endedAs(status, job)) };
  }).filter((a) => a.start !== null);
  const live = attempts.some((a) => a.end === null);
  if (!live && !ENDED.has(job.status) && ["Running", "Stopping", "Active"].includes(job.status)) {
    const start = Math.max(ms(job.started) ?? now, ...attempts.map((a) => a.end));
    attempts.push({ pod: null, start, end: null, outcome: "running", estimated: true });
  }
  const waits = [];
  let from = ms(job.created) ?? attempts[0]?.start ?? null;
  for (const attempt of attempts) {
    if (from !== null && attempt.start > from) waits.push([from, attempt.start]);
    from = attempt.end;
  }
  if (from !== null && !attempts.some((a) => a.end === null)) {
    if (!ENDED.has(job.status)) waits.push([from, now]);
    else if (!attempts.length && jobEnd !== null) waits.push([from, jobEnd]);
  }
  return { attempts, waits };
}

// An attempt that ended as the job did (a stop ends a running attempt).
function endedAs(status, job) {
  if (status === "Running" || status === "Starting" || status === "Pending") return job.status;
  return status;
}

let measurer = null;
function textWidth(text, font) {
  measurer ??= document.createElement("canvas").getContext("2d");
  measurer.font = font;
  return measurer.measureText(text).width;
}

/** `text` shortened in its middle to fit `width` px (the whole name is in the tooltip and the
 *  table). */
function fit(text, width, font) {
  if (textWidth(text, font) <= width) return text;
  let keep = text.length - 1;
  while (keep > 2) {
    const head = Math.ceil(keep / 2);
    const short = `${text.slice(0, head)}…${text.slice(text.length - (keep - head))}`;
    if (textWidth(short, font) <= width) return short;
    keep -= 1;
  }
  return "…";
}

const label = (entry) => {
  const { job, batch } = entry;
  if (job.jobId) return job.jobId;
  return batch && job.name.startsWith(`${batch.name}-`) ? job.name.slice(batch.name.length + 1)
    : job.name;
};

/** The axis: its times above the plot (`top`), or its tick lines down the rows. A time at
 *  either edge leans inwards, so none is cut. */
function axis(x, start, end, plot, height, top, width) {
  const step = stepFor(end - start, Math.max(2, Math.floor((plot[1] - plot[0]) / 90)));
  return ticks(start, end, step).map((t) => {
    const px = x(t);
    if (!top) {
      return `<line class="grid" x1="${px.toFixed(1)}" x2="${px.toFixed(1)}" y1="0" ` +
        `y2="${height}"/>`;
    }
    const text = clock(t, step);
    const half = text.length * 3.4;
    const anchor = px - half < 0 ? "start" : px + half > width ? "end" : "middle";
    const at = { start: Math.max(0, px - 2), end: Math.min(width, px + 2), middle: px }[anchor];
    return `<text class="tick" x="${at.toFixed(1)}" y="${AXIS_PX - 9}" text-anchor="${anchor}">` +
      `${text}</text><line class="tick-mark" x1="${px.toFixed(1)}" x2="${px.toFixed(1)}" ` +
      `y1="${AXIS_PX - 5}" y2="${AXIS_PX}"/>`;
  }).join("");
}

/** Where the bars go: the timeline's rows (its batch header rows and job rows). */
function rowsOf(groups) {
  const rows = [];
  for (const group of groups) {
    if (group.batch) rows.push({ batch: group.batch });
    for (const entry of group.jobs) rows.push({ entry, indent: Boolean(group.batch) });
  }
  return rows;
}

/** The timeline of `groups` (from period.groupsOf, already in the window) over [start, end]. */
export function timelineView() {
  const axisBox = h("div", { class: "timeline-axis", "aria-hidden": "true" });
  const rowsBox = h("div", { class: "timeline-rows", tabindex: "0", role: "region",
    "aria-label": "Timeline (scrolls)" });
  const tip = h("div", { class: "tip", role: "tooltip", id: "timeline-tip", hidden: true });
  const summary = h("p", { id: "timeline-summary" });
  const table = h("details", { class: "alternative" },
    h("summary", {}, "The timeline as a table"), h("div", { class: "scroll" }));
  const box = h("div", { class: "timeline" }, axisBox, rowsBox, tip);
  let bars = []; // by data-bar: what the tooltip tells and where a click goes
  let rowEntries = []; // by data-row: the job a row's label opens
  let last = null;

  rowsBox.addEventListener("pointermove", (event) => show(event));
  rowsBox.addEventListener("pointerleave", () => { tip.hidden = true; });
  rowsBox.addEventListener("click", (event) => {
    const bar = event.target.closest("[data-bar]");
    const row = event.target.closest("[data-row]");
    const href = bar ? bars[Number(bar.dataset.bar)]?.entry.href
      : row && rowEntries[Number(row.dataset.row)]?.href;
    if (href) location.hash = href;
  });
  table.addEventListener("toggle", () => table.open && last && fillTable(...last));

  function show(event) {
    const bar = bars[Number(event.target.closest("[data-bar]")?.dataset.bar)];
    if (!bar) { tip.hidden = true; return; }
    const { entry, attempt, wait } = bar;
    const lines = wait
      ? [`Waited ${span(wait[1] - wait[0])}`, entry.job.status === "Waiting" && entry.job.message]
      : [`Attempt ${attempt.pod?.podIndex ?? (attempt.estimated ? "(starting)" : 0)}: ` +
          `${OUTCOME_WORD[attempt.outcome]}`,
        `${stamp(attempt.start)} – ${attempt.end ? stamp(attempt.end) : "now"} ` +
          `(${span((attempt.end ?? Date.now()) - attempt.start)})`,
        attempt.end && attempt.pod && `Exit code ${attempt.pod.exitCode ?? 0}`,
        attempt.pod && [attempt.pod.reason, attempt.pod.statusMessage].filter(Boolean).join(": ")];
    fill(tip, h("strong", {}, entry.job.name),
      lines.filter(Boolean).map((line) => h("span", {}, line)));
    tip.hidden = false;
    const area = box.getBoundingClientRect();
    const x = Math.min(event.clientX - area.left + 14, area.width - tip.offsetWidth);
    let y = event.clientY - area.top + 16;
    if (y + tip.offsetHeight > area.height) y = event.clientY - area.top - tip.offsetHeight - 10;
    tip.style.left = `${Math.max(0, x)}px`;
    tip.style.top = `${Math.max(0, y)}px`;
  }

  function render(groups, start, end, now) {
    last = [groups, now];
    const width = Math.max(240, rowsBox.clientWidth || box.clientWidth);
    const rows = rowsOf(groups);
    const font = `${LABEL_FONT_PX}px ${getComputedStyle(box).fontFamily}`;
    const widest = Math.max(40, ...rows.slice(0, 2000).map((row) => textWidth(
      row.batch ? `Batch ${row.batch.batchId ?? row.batch.name}` : label(row.entry), font) + 12));
    const labelPx = Math.ceil(Math.min(widest + GAP_PX, width * 0.35, 320));
    const plot = [labelPx + GAP_PX, width - GAP_PX];
    const x = scale(start, end, plot[0], plot[1]);
    const clampX = (t) => Math.min(plot[1], Math.max(plot[0], x(t)));
    const height = Math.max(rows.length, 1) * ROW_PX;
    bars = [];
    rowEntries = [];
    let out = "";
    let attemptCount = 0;
    const outcomes = {};
    rows.forEach((row, i) => {
      const y = i * ROW_PX;
      const mid = y + ROW_PX / 2;
      if (i % 2) out += `<rect class="stripe" x="0" y="${y}" width="${width}" height="${ROW_PX}"/>`;
      if (row.batch) {
        const b = row.batch;
        const text = fit(`Batch ${b.batchId ?? b.name}`, labelPx - 4, `600 ${font}`);
        out += `<text class="label batch-label" x="4" y="${mid + 4}">${esc(text)}</text>`;
        const from = ms(b.started) ?? ms(b.created);
        if (from !== null) {
          const x0 = clampX(from);
          const x1 = clampX(ms(b.ended) ?? now);
          out += `<rect class="batch-span" x="${x0.toFixed(1)}" y="${mid - 2}" ` +
            `width="${Math.max(1, x1 - x0).toFixed(1)}" height="4"/>`;
        }
        return;
      }
      const { entry } = row;
      rowEntries[i] = entry;
      const indent = row.indent ? 14 : 4;
      const text = fit(label(entry), labelPx - indent, font);
      out += `<text class="label" data-row="${i}" x="${indent}" y="${mid + 4}">${esc(text)}</text>`;
      const { attempts, waits } = segments(entry.job, now);
      for (const wait of waits) {
        if (wait[1] < start || wait[0] > end) continue;
        const x0 = clampX(wait[0]);
        const x1 = clampX(wait[1]);
        bars.push({ entry, wait });
        out += `<rect class="wait" data-bar="${bars.length - 1}" x="${x0.toFixed(1)}" ` +
          `y="${mid - 3}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="6"/>`;
      }
      for (const attempt of attempts) {
        const stop = attempt.end ?? now;
        if (stop < start || attempt.start > end) continue;
        const x0 = clampX(attempt.start);
        const x1 = clampX(stop);
        bars.push({ entry, attempt });
        attemptCount += 1;
        outcomes[attempt.outcome] = (outcomes[attempt.outcome] ?? 0) + 1;
        out += `<rect class="bar o-${attempt.outcome}" data-bar="${bars.length - 1}" ` +
          `data-job="${esc(entry.job.name)}" data-attempt="${attempt.pod?.podIndex ?? ""}" ` +
          `data-outcome="${attempt.outcome}"${attempt.end === null ? " data-live=\"\"" : ""} ` +
          `x="${x0.toFixed(2)}" y="${mid - BAR_PX / 2}" ` +
          `width="${Math.max(2, x1 - x0).toFixed(2)}" ` +
          `height="${BAR_PX}" fill="url(#fill-${attempt.outcome})"/>`;
      }
    });
    const nowLine = now >= start && now <= end
      ? `<line class="now" x1="${x(now).toFixed(1)}" x2="${x(now).toFixed(1)}" y1="0" ` +
        `y2="${height}"/>`
      : "";
    const jobs = rows.filter((row) => row.entry).length;
    const said = `${jobs} ${jobs === 1 ? "job" : "jobs"} with ${attemptCount} ` +
      `${attemptCount === 1 ? "attempt" : "attempts"} from ${stamp(start)} to ${stamp(end)}` +
      (attemptCount ? `: ${OUTCOMES.filter(([k]) => outcomes[k])
        .map(([k, word]) => `${outcomes[k]} ${word.toLowerCase()}`).join(", ")}.` : ".");
    if (summary.textContent !== said) fill(summary, said);
    const scrollTop = rowsBox.scrollTop;
    fill(axisBox, svg({ width, height: AXIS_PX, "data-start": start, "data-end": end,
      "data-plot-left": plot[0], "data-plot-right": plot[1] },
    axis(x, start, end, plot, 0, true, width)));
    fill(rowsBox, svg({ width, height, role: "img", "aria-label": `Timeline: ${said}`,
      "aria-describedby": "timeline-help", class: "timeline-svg" },
    axis(x, start, end, plot, height, false) + out + nowLine));
    rowsBox.scrollTop = scrollTop;
    if (!jobs) rowsBox.append(h("p", { class: "empty" }, "No job in this window."));
    if (table.open) fillTable(groups, now);
  }

  function fillTable(groups, now) {
    const rows = [];
    for (const group of groups) {
      for (const entry of group.jobs) {
        const { attempts, waits } = segments(entry.job, now);
        const waited = waits.reduce((sum, [a, b]) => sum + (b - a), 0);
        const link = h("a", { href: entry.href }, entry.job.name);
        if (!attempts.length) {
          rows.push(h("tr", {}, h("td", {}, link), h("td", {}, group.batch?.name ?? ""),
            h("td", {}, "—"), h("td", {}, entry.job.status), h("td", {}, "—"),
            h("td", {}, "—"),
            h("td", {}, waited ? span(waited) : "—"), h("td", {}, "—"), h("td", {}, "—"),
            h("td", { class: "message" }, entry.job.message ?? "")));
        }
        for (const a of attempts) {
          rows.push(h("tr", {}, h("td", {}, link.cloneNode(true)),
            h("td", {}, group.batch?.name ?? ""), h("td", {}, String(a.pod?.podIndex ?? "")),
            h("td", {}, OUTCOME_WORD[a.outcome]), h("td", {}, time(iso(a.start))),
            h("td", {}, a.end ? time(iso(a.end)) : "running"),
            h("td", {}, a === attempts[0] && waited ? span(waited) : ""),
            h("td", {}, span((a.end ?? now) - a.start)),
            h("td", {}, a.end && a.pod ? String(a.pod.exitCode ?? 0) : ""),
            h("td", { class: "message" }, a.pod ? [a.pod.reason, a.pod.statusMessage]
              .filter(Boolean).join(": ") : "")));
        }
      }
    }
    fill(table.lastChild, h("table", { id: "timeline-table" },
      h("caption", { class: "visually-hidden" }, "Attempts of each job in the window"),
      h("thead", {}, h("tr", {}, ["Job", "Batch", "Attempt", "Outcome", "Started", "Ended",
        "Waited", "Duration", "Exit code", "Message"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)));
  }

  const el = h("section", { "aria-labelledby": "timeline-heading" },
    h("h3", { id: "timeline-heading" }, "Attempts by job"),
    h("p", { id: "timeline-help", class: "help" }, "One row per job, a batch's jobs under it; " +
      "a bar per attempt, a thin band while the job waited. Hover for times, exit code and " +
      "message; click to open the job."),
    legend(), summary, box, table);
  return { el, render };
}

const iso = (t) => new Date(t).toISOString().replace(/\.000Z$/, "Z");
const stamp = (t) => {
  const d = new Date(t);
  return `${d.toLocaleDateString("en-CA")} ${clock(t, 1000)}`;
};

/** A single job's attempts and waits over its life, small, for its page. */
export function jobTimeline(job, now, width) {
  const { attempts, waits } = segments(job, now);
  const start = ms(job.created) ?? attempts[0]?.start;
  if (start === undefined || start === null) return null;
  const end = Math.max(ms(job.ended) ?? now, start + 1000);
  const plot = [GAP_PX, Math.max(120, width) - GAP_PX];
  const x = scale(start, end, plot[0], plot[1]);
  const mid = AXIS_PX + ROW_PX / 2;
  let out = axis(x, start, end, plot, 0, true, plot[1] + GAP_PX);
  for (const [a, b] of waits) {
    out += `<rect class="wait" x="${x(a).toFixed(1)}" y="${mid - 3}" ` +
      `width="${Math.max(1, x(b) - x(a)).toFixed(1)}" height="6"/>`;
  }
  for (const attempt of attempts) {
    const x0 = x(attempt.start);
    out += `<rect class="bar o-${attempt.outcome}" data-attempt="${attempt.pod?.podIndex ?? ""}" ` +
      `data-outcome="${attempt.outcome}" x="${x0.toFixed(2)}" y="${mid - BAR_PX / 2}" ` +
      `width="${Math.max(2, x(attempt.end ?? now) - x0).toFixed(2)}" height="${BAR_PX}" ` +
      `fill="url(#fill-${attempt.outcome})"/>`;
  }
  const words = story(job, attempts, waits, now);
  return {
    picture: svg({ width: plot[1] + GAP_PX, height: AXIS_PX + ROW_PX + 4, role: "img",
      "aria-label": words, class: "job-timeline-svg", "data-start": start, "data-end": end,
      "data-plot-left": plot[0], "data-plot-right": plot[1] }, out),
    words,
  };
}

/** The job's life in words: each wait and attempt in turn. */
function story(job, attempts, waits, now) {
  const parts = [];
  attempts.forEach((attempt, i) => {
    const wait = waits.find(([, b]) => b === attempt.start);
    if (wait) parts.push(`waited ${span(wait[1] - wait[0])}`);
    const ran = span((attempt.end ?? now) - attempt.start);
    const n = attempt.pod?.podIndex ?? i;
    parts.push(attempt.end === null ? `attempt ${n} has run ${ran} so far`
      : `attempt ${n} ${OUTCOME_WORD[attempt.outcome].toLowerCase()} after ${ran}` +
        (attempt.pod && attempt.outcome === "failed" ? ` (exit code ${attempt.pod.exitCode ?? 0})`
          : ""));
  });
  const open = waits.find(([, b]) => b === now);
  if (open) parts.push(`has waited ${span(open[1] - open[0])} so far`);
  if (!parts.length) return "No attempt.";
  const text = parts.join("; then ");
  return `${text[0].toUpperCase()}${text.slice(1)}.`;
}
