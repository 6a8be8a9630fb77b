// A job's page (its details, attempts, failure message, result and live log) and a batch's page
// (its details and jobs). Both follow the live state; nothing here polls.
import * as api from "./api.js";
import { actionBar } from "./actions.js";
import { askedPanel, storyPanel } from "./asked.js";
import { authorizedFetch } from "./auth.js";
import {
  ENDED, badge, bytes, details, duration, fill, h, keepingFocus, time,
} from "./dom.js";
import { findJob, put, state, subscribe } from "./store.js";
import { patterns } from "./svg.js";

// The most log text kept on the page; older text goes first.
const LOG_LIMIT_CHARS = 2_000_000;

/** The page's frame: heading, action bar, and what is there while it loads or when it is gone. */
function frame(main, target, title) {
  const heading = h("h2", { tabindex: "-1" }, title, " ", h("span", { class: "name" }, target.name));
  const status = h("span", { class: "status" });
  const actions = actionBar(target);
  const body = h("div", {}, h("p", {}, "Loading…"));
  fill(main, h("div", { class: "title" }, heading, status), actions.bar, actions.message, body);
  return { status, actions, body };
}

/** When the live state lacks it: ask the API (once), to show its 404 as it words it, unless
 *  the page has come meanwhile (its event was on the way). */
function missing(page, target, shown) {
  if (page.asked) return;
  page.asked = true;
  api.get(target).catch((error) => shown() ||
    fill(page.body, h("p", { class: "notice error", role: "alert" }, error.message)));
}

function attemptsTable(job) {
  const pods = job.podStatuses ?? [];
  if (!pods.length) {
    // Kubernetes deletes the pods of a stopped job; without its record its attempts go too.
    return h("p", {}, ENDED.has(job.status) && job.started ? "No attempt left: they are gone."
      : "No attempt yet.");
  }
  return h("div", { class: "scroll" }, h("table", {},
    h("caption", { class: "visually-hidden" }, "Attempts"),
    h("thead", {}, h("tr", {}, ["Attempt", "Pod", "Status", "Started", "Ended", "Exit code",
      "Reason", "Image"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, pods.map((pod) => h("tr", {},
      h("td", {}, String(pod.podIndex ?? 0)),
      h("td", {}, pod.name),
      h("td", {}, pod.replicaStatus?.status ?? ""),
      h("td", {}, time(pod.startTime ?? pod.created)),
      h("td", {}, time(pod.endTime)),
      h("td", {}, pod.endTime ? String(pod.exitCode ?? 0) : ""),
      h("td", { class: "message" }, [pod.reason, pod.statusMessage].filter(Boolean).join(": ")),
      h("td", {}, pod.image ?? ""))))));
}

/** The log: the latest attempt followed live (across the job's attempts while it runs), or one
 *  earlier attempt. A stream that ended while the job runs again (a restart) starts over.
 *  `onTurn()` is called when an attempt's output starts and when the stream ends. A log whose
 *  start is missing (the job's record kept only its end, or the page let it go) says so in a
 *  line of its own above the text, never in the text. */
function logPanel(target, onTurn) {
  const select = h("select", { id: "attempt", onchange: () => open() },
    h("option", { value: "" }, "Latest, following"));
  const pre = h("pre", { id: "log", tabindex: "0", "aria-label": "Log", "aria-live": "off",
    "aria-describedby": "log-cut" });
  const line = h("p", { id: "log-state", class: "help" });
  const source = h("p", { id: "log-source", class: "help", hidden: true },
    "This attempt's pod is gone: its log comes from the job's record.");
  const cut = h("p", { id: "log-cut", class: "log-cut", hidden: true });
  let controller = null;
  let streaming = false;
  let size = 0; // characters in the log shown
  let notKept = false; // the record kept only the end of the log

  function open() {
    controller?.abort();
    controller = new AbortController();
    const { signal } = controller;
    pre.replaceChildren();
    pre.hidden = false;
    delete pre.dataset.ended;
    size = 0;
    notKept = false;
    source.hidden = true;
    cut.hidden = true;
    fill(cut);
    streaming = true;
    line.className = "help";
    line.removeAttribute("role");
    fill(line, "Following the log…");
    const attempt = select.value === "" ? null : Number(select.value);
    let started = false;
    const receive = (text) => {
      if (!started && text) {
        started = true;
        onTurn();
      }
      write(text);
    };
    const opened = ({ kept, truncated }) => {
      source.hidden = !kept;
      notKept = truncated;
      if (truncated) {
        fill(cut, "… the start of this log was not kept: the job's record keeps only the end " +
          "of each attempt's log.");
        cut.hidden = false;
      }
    };
    api.followLog(target, attempt, receive, signal, opened)
      .then(() => { fill(line, "End of log."); pre.dataset.ended = ""; onTurn(); })
      .catch((error) => signal.aborted || failed(error))
      .finally(() => { if (!signal.aborted) streaming = false; });
  }

  /** The API's words for why there is no log (or why it broke off), as an error: never an
   *  empty log that looks like one that was read. */
  function failed(error) {
    line.className = "notice error";
    line.setAttribute("role", "alert");
    fill(line, size ? `The log broke off: ${error.message}` : `No log: ${error.message}`);
    pre.hidden = size === 0;
  }

  function write(text) {
    if (!text) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(text);
    size += text.length;
    let dropped = false;
    while (size > LOG_LIMIT_CHARS && pre.firstChild) {
      size -= pre.firstChild.textContent.length;
      pre.firstChild.remove();
      dropped = true;
    }
    if (dropped && !notKept) {
      fill(cut, `… the start of this log is not shown: the page keeps its last ` +
        `${bytes(LOG_LIMIT_CHARS)} characters.`);
      cut.hidden = false;
    }
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  function update(job) {
    const pods = job.podStatuses ?? [];
    const signature = pods.map((pod) => `${pod.podIndex}:${pod.replicaStatus?.status}`).join();
    if (signature !== select.dataset.signature) {
      // Rebuilt only when the attempts change, so an open drop-down stays open.
      select.dataset.signature = signature;
      const chosen = select.value;
      fill(select, h("option", { value: "" }, "Latest, following"),
        pods.map((pod) => h("option", { value: String(pod.podIndex ?? 0) },
          `Attempt ${pod.podIndex ?? 0} (${pod.replicaStatus?.status ?? "unknown"})`)));
      select.value = chosen;
    }
    if (!controller || (!streaming && select.value === "" && !ENDED.has(job.status))) open();
  }

  const panel = h("section", { "aria-labelledby": "log-heading" },
    h("h3", { id: "log-heading" }, "Log"),
    h("div", { class: "field" }, h("label", { for: "attempt" }, "Attempt"), select),
    line, source, cut, pre);
  return { panel, update, close: () => controller?.abort() };
}

/** The result, read once the job has ended (again after a restart ends). */
function resultPanel(target) {
  const out = h("div", {}, h("p", {}, "Available once the job has ended."));
  let readFor = null; // the `ended` time it was read for
  function update(job) {
    if (!ENDED.has(job.status) || readFor === job.ended) return;
    readFor = job.ended;
    api.result(target)
      .then((text) => fill(out, text === null ? h("p", {}, "The job wrote no result.")
        : h("pre", { id: "result", tabindex: "0", "aria-label": "Result" }, text)))
      .catch((error) => fill(out, h("p", { class: "notice error" }, error.message)));
  }
  const panel = h("section", { "aria-labelledby": "result-heading" },
    h("h3", { id: "result-heading" }, "Result"), out);
  return { panel, update };
}

/** What each attempt used, as `GET .../usage` answers (the API's words on a failure). */
async function usageOf(target) {
  const response = await authorizedFetch(`../api/v1${api.pathOf(target)}/usage`,
    { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new api.ApiError(response.status, typeof body?.message === "string" ? body.message
      : `${response.status} ${response.statusText}`.trim());
  }
  return body;
}

const resources = (list) => Object.entries(list ?? {}).map(([k, v]) => `${k} ${v}`).join(", ");

/** What each attempt used, as the API words it ("peak 410 MiB of a 2 GiB limit; ..."), with what
 *  the job asked for. Read when the attempts change or the job ends (a running job's figures
 *  grow: "Refresh" reads them again). */
function usagePanel(target) {
  const out = h("div", {}, h("p", {}, "Loading…"));
  let readFor = null; // the attempts and status it was read for
  const read = () => usageOf(target)
    .then((usage) => fill(out, usageList(usage)))
    .catch((error) => fill(out, h("p", { class: "notice error" }, error.message)));
  function update(job) {
    const signature = [job.status, ...(job.podStatuses ?? []).map((pod) =>
      `${pod.podIndex}:${pod.replicaStatus?.status}`)].join();
    if (signature === readFor) return;
    readFor = signature;
    read();
  }
  const panel = h("section", { "aria-labelledby": "usage-heading" },
    h("h3", { id: "usage-heading" }, "Usage"),
    h("div", { class: "actions" }, h("button", { type: "button", onclick: read }, "Refresh")),
    out);
  return { panel, update };
}

function usageList(usage) {
  const attempts = usage.attempts ?? [];
  if (!attempts.length) return h("p", {}, "No attempt to measure.");
  const { requests, limits } = attempts.at(-1);
  return [
    h("p", { class: "help" }, `Requests: ${resources(requests) || "none"}. ` +
      `Limits: ${resources(limits) || "none"}. Measured from ${usage.source}.`),
    h("ul", { id: "usage", class: "usage" }, attempts.map((attempt) =>
      h("li", { "data-attempt": String(attempt.podIndex ?? 0),
        class: attempt.available ? null : "none" },
      h("strong", {}, `Attempt ${attempt.podIndex ?? 0}: `), attempt.hint))),
  ];
}

export function jobView(main, target) {
  const page = frame(main, target, "Job");
  // The event stream tells of a change of status or message (as Radix's webhook does), not of
  // a new attempt alone: the page reads the job again when an event about it comes, and when
  // its log turns to a new attempt or ends. Still no polling.
  let seen = null;
  const refresh = () => api.get(target).then((job) => { seen = job; put(target, job); }, () => {});
  const log = logPanel(target, refresh);
  const result = resultPanel(target);
  const usage = usagePanel(target);
  const asked = askedPanel(target);
  const story = storyPanel(asked);
  asked.whenAsked(() => render());
  const summary = h("div");
  const attempts = h("section", { "aria-labelledby": "attempts-heading" });
  let shown = false;

  function render() {
    const job = findJob(target);
    if (job && seen && job !== seen) refresh();
    seen = job ?? seen;
    if (!job) {
      if (state.loaded && !shown) missing(page, target, () => shown);
      if (shown) fill(page.body, h("p", { class: "notice error", role: "alert" },
        `The job ${target.name} is gone.`));
      return;
    }
    if (!shown) {
      shown = true;
      fill(page.body, patterns(), summary, asked.panel, story.panel, attempts, usage.panel,
        result.panel, log.panel);
    }
    fill(page.status, badge(job.status));
    page.actions.update(job);
    const batch = target.kind === "batchJob" &&
      h("a", { href: `#/batches/${encodeURIComponent(target.batch)}`, "data-key": "batch" },
        target.batch);
    keepingFocus(summary, () => fill(summary,
      job.status === "Failed" && job.message &&
        h("p", { class: "notice error", id: "failure" }, h("strong", {}, "Failed: "), job.message),
      details([
        ["jobId", job.jobId], ["Batch", batch], ["batchId", job.batchId],
        ["Created", time(job.created)], ["Started", time(job.started)],
        ["Ended", time(job.ended)], ["Duration", duration(job.started, job.ended)],
        ["Restarted", job.restart && time(job.restart)], ["Failed attempts", String(job.failed ?? 0)],
        ["Image", job.podStatuses?.at(-1)?.image],
        ["Message", job.status !== "Failed" && job.message],
      ])));
    fill(attempts, h("h3", { id: "attempts-heading" }, "Attempts"), attemptsTable(job));
    story.update(job);
    result.update(job);
    usage.update(job);
    log.update(job);
  }

  render();
  const unsubscribe = subscribe(render);
  // A running job's duration grows: redraw each second while it runs.
  const ticking = setInterval(() => ENDED.has(findJob(target)?.status ?? "Succeeded") || render(),
    1000);
  return () => { unsubscribe(); clearInterval(ticking); log.close(); };
}

export function batchView(main, name) {
  const target = { kind: "batch", name };
  const page = frame(main, target, "Batch");
  const jobs = h("tbody");
  const summary = h("div");
  let shown = false;

  function render() {
    const batch = state.batches.get(name);
    if (!batch) {
      if (state.loaded && !shown) missing(page, target, () => shown);
      if (shown) fill(page.body, h("p", { class: "notice error", role: "alert" },
        `The batch ${name} is gone.`));
      return;
    }
    if (!shown) {
      shown = true;
      fill(page.body, summary, h("section", { "aria-labelledby": "jobs-heading" },
        h("h3", { id: "jobs-heading" }, "Jobs"),
        h("div", { class: "scroll" }, h("table", {}, h("caption", { class: "visually-hidden" },
          "Jobs of the batch"), h("thead", {}, h("tr", {}, ["Name", "Status", "jobId", "Started",
          "Ended", "Duration", "Message"].map((t) => h("th", { scope: "col" }, t)))), jobs))));
    }
    fill(page.status, badge(batch.status));
    page.actions.update(batch);
    fill(summary, details([
      ["batchId", batch.batchId], ["Created", time(batch.created)],
      ["Started", time(batch.started)], ["Ended", time(batch.ended)],
      ["Duration", duration(batch.started, batch.ended)], ["Message", batch.message],
    ]));
    // In the order of the batch request, as the API lists them.
    keepingFocus(jobs, () => fill(jobs, (batch.jobStatuses ?? []).map((job) => h("tr", {},
      h("td", {}, h("a", {
        href: `#/batches/${encodeURIComponent(name)}/jobs/${encodeURIComponent(job.name)}`,
        "data-key": `job:${job.name}`,
      }, job.name)),
      h("td", {}, badge(job.status)), h("td", {}, job.jobId ?? ""),
      h("td", {}, time(job.started)), h("td", {}, time(job.ended)),
      h("td", {}, duration(job.started, job.ended)),
      h("td", { class: "message" }, job.message ?? "")))));
  }

  render();
  return subscribe(render);
}
