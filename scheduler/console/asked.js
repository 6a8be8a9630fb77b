// A job's story on its page: what was asked (the request's options and the names of its
// variables; their values and the payload are never shown), and when and why (its attempts in a
// small timeline with the same in words, and the reasons it waited).
import * as api from "./api.js";
import { details, fill, h, time } from "./dom.js";
import { jobTimeline } from "./timeline.js";
import { legend } from "./svg.js";

const TIMELINE_MAX_PX = 760;

const listed = (map) => Object.entries(map ?? {}).map(([k, v]) => `${k} ${v}`).join(", ");
const seconds = (s) => (s === null || s === undefined ? null
  : `${s.toLocaleString("en")} s${s >= 60 ? ` (${words(s)})` : ""}`);

function words(s) {
  const parts = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]].flatMap(([unit, name]) => {
    const n = Math.floor(s / unit);
    s %= unit;
    return n ? [`${n} ${name}`] : [];
  });
  return parts.join(" ");
}

/** The request as a list of what it set. */
function askedList(asked) {
  const resources = asked.resources ?? {};
  const node = asked.node ?? {};
  const runtime = asked.runtime ?? {};
  const names = asked.variableNames ?? [];
  return details([
    ["Image", asked.image && h("code", {}, asked.image)],
    ["Requests", listed(resources.requests)],
    ["Limits", listed(resources.limits)],
    ["Node", [node.gpu && `GPU ${node.gpu}`, node.gpuCount && `${node.gpuCount} GPUs at least`]
      .filter(Boolean).join(", ")],
    ["Runtime", [runtime.architecture && `architecture ${runtime.architecture}`,
      runtime.nodeType && `node type ${runtime.nodeType}`].filter(Boolean).join(", ")],
    ["Time limit", seconds(asked.timeLimitSeconds)],
    ["Backoff limit", asked.backoffLimit !== null && asked.backoffLimit !== undefined &&
      `${asked.backoffLimit} ${asked.backoffLimit === 1 ? "retry" : "retries"}`],
    ["Start after", asked.startAfter && time(asked.startAfter)],
    ["Waiting timeout", seconds(asked.waitingTimeoutSeconds)],
    ["Schedule", asked.schedule],
    ["Variables", names.length ? `${names.join(", ")} (values not shown)` : "none"],
    ["Payload", asked.hasPayload ? "given (not shown)" : "none"],
  ]);
}

/** "What was asked": read once when the page opens (a request does not change). */
export function askedPanel(target) {
  const out = h("div", { id: "asked" }, h("p", {}, "Loading…"));
  let request = null;
  api.request(target).then((asked) => {
    request = asked;
    fill(out, askedList(asked));
    onAsked();
  }, (error) => fill(out, h("p", { class: "help" }, `Not known: ${error.message}`)));
  let onAsked = () => {};
  const panel = h("section", { "aria-labelledby": "asked-heading" },
    h("h3", { id: "asked-heading" }, "What was asked"), out);
  return { panel, request: () => request, whenAsked: (callback) => { onAsked = callback; } };
}

/** "When and why": the attempts over the job's life, and the reasons it waited (its request's
 *  start time, why each attempt waited as the job keeps it, and what the scheduler says of an
 *  attempt still waiting, seen on this page or now). */
export function storyPanel(asked) {
  const picture = h("div", { class: "job-timeline" });
  const said = h("p", { id: "story" });
  const why = h("ul", { id: "why-waited", class: "waited" });
  const seen = []; // the waiting messages seen while on the page, in turn
  const panel = h("section", { "aria-labelledby": "story-heading" },
    h("h3", { id: "story-heading" }, "When and why"), legend(), picture, said,
    h("h4", {}, "Why it waited"), why);

  function update(job) {
    if (job.status === "Waiting" && job.message && seen.at(-1) !== job.message) {
      seen.push(job.message);
    }
    const drawn = jobTimeline(job, Date.now(), Math.min(TIMELINE_MAX_PX,
      panel.clientWidth || TIMELINE_MAX_PX));
    fill(picture, drawn?.picture);
    fill(said, drawn?.words ?? "No attempt yet.");
    const startAfter = asked.request()?.startAfter;
    const pods = job.podStatuses ?? [];
    const told = pods.filter((pod) => pod.waited);
    const pending = pods.filter((pod) => !pod.endTime && !pod.startTime &&
      (pod.reason || pod.statusMessage));
    const reasons = [
      startAfter && h("li", {}, "Asked to start after ", time(startAfter), "."),
      ...told.map((pod) => h("li", { "data-attempt": String(pod.podIndex ?? 0) },
        `Attempt ${pod.podIndex ?? 0} waited ${seconds(pod.waited.seconds)}: ` +
        [pod.waited.reason, pod.waited.message].filter(Boolean).join(": "))),
      // What was seen while the job waited, until its attempts tell why they waited themselves.
      ...(told.length ? [] : seen.map((message) => h("li", {}, message))),
      ...pending.map((pod) => h("li", {}, [pod.reason, pod.statusMessage].filter(Boolean)
        .join(": "))),
    ].filter(Boolean);
    fill(why, reasons.length ? reasons : h("li", { class: "none" },
      "No reason seen: the scheduler names it here while the job waits."));
  }
  return { panel, update };
}
