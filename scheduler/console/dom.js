// Building DOM and formatting values. Data only ever becomes text nodes or attribute values
// (never HTML), so a job name or message cannot inject markup.

/** h("a", {href: "#/"}, "text", child, ...): an element; null, false and undefined children
 *  are left out, arrays are flattened, `on<event>` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "value" || key === "checked" || key === "disabled") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const ENDED = new Set(["Succeeded", "Failed", "Stopped", "Completed"]);
export const STATUSES = [
  "Waiting", "Active", "Running", "Stopping", "Succeeded", "Failed", "Stopped", "Completed",
];

/** A status as a badge: its word is always there, the colour only repeats it. */
export function badge(status) {
  const known = STATUSES.includes(status) ? status.toLowerCase() : "unknown";
  return h("span", { class: `badge badge-${known}` }, status || "Unknown");
}

const pad = (n) => String(n).padStart(2, "0");

/** A RFC 3339 time as local `YYYY-MM-DD HH:MM:SS` in a <time>, or a dash. */
export function time(iso) {
  if (!iso) return h("span", { class: "none" }, "—");
  const d = new Date(iso);
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h("time", { datetime: iso, title: iso }, text);
}

/** How long something ran: from `start` to `end`, or to now while it runs. */
export function duration(start, end) {
  if (!start) return "—";
  let s = Math.max(0, Math.round(((end ? Date.parse(end) : Date.now()) - Date.parse(start)) / 1000));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  s %= 60;
  if (hours) return `${hours}h ${pad(minutes)}m`;
  if (minutes) return `${minutes}m ${pad(s)}s`;
  return `${s}s`;
}

export const bytes = (n) => n.toLocaleString("en");

/** A `<dl>` of [term, value] pairs, leaving out those without a value. */
export function details(pairs) {
  return h("dl", { class: "details" },
    pairs.filter(([, value]) => value !== null && value !== undefined && value !== "" &&
      value !== false)
      .map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

/** Keep keyboard focus across a re-render: remember the focused element's data-key, and after
 *  `render()` focus the element that has the same key again. */
export function keepingFocus(root, render) {
  const key = root.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  render();
  if (key) root.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}
