// What the pictures share: SVG built as markup strings in one pass (a thousand rows are one
// assignment, not thousands of DOM calls), linear scales, time ticks, and the outcomes' colours
// and patterns. Colours are Okabe-Ito (safe for colour-blind eyes) and each outcome has a pattern
// of its own too, so no two differ by colour alone; the words are always in a table beside.
import { h } from "./dom.js";

/** Text made safe for markup: in an element or a quoted attribute. */
export function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element from markup (its own contents drawn as a string, every text in it `esc`d).
 * Parsed as XML by a parser of its own, not through innerHTML: markup never becomes HTML, and a
 * mistake in it is a parse error shown as such, not a guess. */
export function svg(attrs, inner) {
  const parsed = new DOMParser().parseFromString(
    `<svg xmlns="${SVG_NS}">${inner}</svg>`, "image/svg+xml");
  const root = parsed.documentElement;
  if (root.namespaceURI !== SVG_NS || root.getElementsByTagName("parsererror").length) {
    throw new Error(`a picture's markup did not parse: ${root.textContent.slice(0, 200)}`);
  }
  const el = document.importNode(root, true);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  }
  return el;
}

/** A linear map of [d0, d1] onto [r0, r1]. */
export function scale(d0, d1, r0, r1) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

const SECOND_MS = 1000;
const MINUTE_MS = 60 * SECOND_MS;
const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;
// Steps a time axis may tick by, or an interval a chart may count by.
export const STEPS_MS = [
  1, 2, 5, 10, 15, 30,
].map((s) => s * SECOND_MS).concat([1, 2, 5, 10, 15, 30].map((m) => m * MINUTE_MS),
  [1, 2, 3, 6, 12].map((hours) => hours * HOUR_MS), [1, 2, 7].map((d) => d * DAY_MS));

/** The smallest step that makes at most `count` pieces of `spanMs`. */
export function stepFor(spanMs, count) {
  return STEPS_MS.find((step) => spanMs / step <= count) ?? STEPS_MS.at(-1);
}

const pad = (n) => String(n).padStart(2, "0");

/** A local time as short as the step allows: HH:MM:SS, HH:MM or MM-DD HH:MM. */
export function clock(ms, stepMs) {
  const d = new Date(ms);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (stepMs < MINUTE_MS) return `${hm}:${pad(d.getSeconds())}`;
  if (stepMs < DAY_MS) return hm;
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
}

/** Tick times of a local-time axis over [start, end]: whole steps (whole local days). */
export function ticks(start, end, stepMs) {
  const offset = stepMs >= HOUR_MS ? new Date(start).getTimezoneOffset() * MINUTE_MS : 0;
  const out = [];
  for (let t = Math.ceil((start - offset) / stepMs) * stepMs + offset; t <= end; t += stepMs) {
    out.push(t);
  }
  return out;
}

/** A duration in words: 0 s, 12 s, 3 min 05 s, 5 min, 2 h 10 min, 1 d. */
export function span(ms) {
  const s = Math.round(ms / SECOND_MS);
  if (s < 60) return `${s} s`;
  if (s < 3600) return s % 60 ? `${Math.floor(s / 60)} min ${pad(s % 60)} s` : `${s / 60} min`;
  if (s >= 86400 && s % 86400 === 0) return `${s / 86400} d`;
  const minutes = Math.floor((s % 3600) / 60);
  return minutes ? `${Math.floor(s / 3600)} h ${pad(minutes)} min` : `${Math.floor(s / 3600)} h`;
}

/** The outcomes a bar or a stack may show, in stacking order, with their words. */
export const OUTCOMES = [
  ["succeeded", "Succeeded"], ["failed", "Failed"], ["stopped", "Stopped"],
  ["running", "Running"], ["waiting", "Waiting"],
];
export const OUTCOME_WORD = Object.fromEntries(OUTCOMES);

/** A job's status (or an attempt's replica status) as one of OUTCOMES. */
export function outcomeOf(status) {
  switch (status) {
    case "Succeeded": case "Completed": return "succeeded";
    case "Failed": case "Failing": return "failed";
    case "Stopped": case "Stopping": case "Terminated": return "stopped";
    case "Running": case "Active": case "Starting": return "running";
    default: return "waiting";
  }
}

/** The patterns every picture fills with (`url(#fill-<outcome>)`): one hidden SVG a page holds
 *  once. Stripes, dots and cross-hatching sit on the colour, so print, grey screens and colour
 *  blindness still tell them apart. */
export function patterns() {
  const stripe = (id, inner, transform = "") => `<pattern id="fill-${id}" width="6" height="6" ` +
    `patternUnits="userSpaceOnUse"${transform}><rect class="o-${id}" width="6" height="6"/>` +
    `${inner}</pattern>`;
  return svg({ class: "svg-defs", width: 0, height: 0, "aria-hidden": "true", focusable: "false" },
    `<defs>${stripe("succeeded", "")}` +
    stripe("failed", `<rect class="mark" width="2.2" height="6"/>`,
      ` patternTransform="rotate(45)"`) +
    stripe("stopped", `<circle class="mark" cx="3" cy="3" r="1.3"/>`) +
    stripe("running", `<rect class="mark" width="6" height="1.6"/>`) +
    stripe("waiting", `<path class="mark-line" d="M0 6L6 0M0 0L6 6"/>`) +
    `</defs>`);
}

/** The legend of the outcomes shown: a swatch (its pattern) and the word. */
export function legend(outcomes = OUTCOMES.map(([key]) => key)) {
  return h("ul", { class: "legend" }, outcomes.map((key) => h("li", {},
    svg({ width: 14, height: 14, "aria-hidden": "true", focusable: "false" },
      `<rect class="swatch" width="14" height="14" fill="url(#fill-${key})"/>`),
    OUTCOME_WORD[key])));
}
