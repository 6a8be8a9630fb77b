// Start a job (payload, jobId and the common options) or a batch (a JSON document). What the
// API answers is shown in its own words.
import * as api from "./api.js";
import { bytes, fill, h } from "./dom.js";

const encoder = new TextEncoder();
const BATCH_EXAMPLE = `{
  "batchId": "my-batch",
  "defaultRadixJobComponentConfig": {"timeLimitSeconds": 600},
  "jobScheduleDescriptions": [
    {"jobId": "part-1", "payload": "1"},
    {"jobId": "part-2", "payload": "2"}
  ]
}
`;

function field(id, label, control, help) {
  if (help) control.setAttribute("aria-describedby", `${id}-help`);
  return h("div", { class: "field" }, h("label", { for: id }, label), control,
    help && h("span", { id: `${id}-help`, class: "help" }, help));
}

/** A form that sends itself with `send()` (never a browser form submission: the page's CSP
 *  forbids those) and shows the API's answer if it fails. */
function form(id, title, fields, label, send) {
  const error = h("p", { class: "notice error", role: "alert", hidden: true });
  const button = h("button", { type: "submit" }, label);
  const el = h("form", {
    id, novalidate: true, "aria-labelledby": `${id}-heading`,
    onsubmit: async (event) => {
      event.preventDefault();
      button.disabled = true;
      error.hidden = true;
      try {
        await send();
      } catch (failure) {
        fill(error, failure.message);
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    },
  }, h("h2", { id: `${id}-heading`, tabindex: "-1" }, title), fields, error, button);
  return el;
}

/** `NAME=value` lines as an object; a line without `=` is an error naming it. */
function parseVariables(text) {
  const variables = {};
  text.split("\n").forEach((line, index) => {
    if (!line.trim()) return;
    const at = line.indexOf("=");
    if (at < 1) throw new Error(`Variables: line ${index + 1} is not NAME=value`);
    variables[line.slice(0, at).trim()] = line.slice(at + 1);
  });
  return variables;
}

export function jobForm(main, info) {
  const limit = info?.maxPayloadBytes ?? 1048576;
  const payload = h("textarea", { id: "payload", rows: "8", spellcheck: "false" });
  const size = h("span", { id: "payload-help", class: "help" });
  const showSize = () => {
    const n = encoder.encode(payload.value).length;
    fill(size, `${bytes(n)} of ${bytes(limit)} bytes (1 MiB)` +
      (n > limit ? `: too large by ${bytes(n - limit)}` : ""));
    size.classList.toggle("over", n > limit);
  };
  payload.setAttribute("aria-describedby", "payload-help");
  payload.addEventListener("input", showSize);
  showSize();
  const input = (id, attrs = {}) => h("input", { id, type: "text", ...attrs });
  const jobId = input("job-id");
  const tag = input("image-tag");
  const variables = h("textarea", { id: "variables", rows: "3", spellcheck: "false" });
  const timeLimit = input("time-limit", { type: "number", min: "1", inputmode: "numeric" });
  const backoff = input("backoff-limit", { type: "number", min: "0", inputmode: "numeric" });

  fill(main, form("start-job", "Start a job", [
    h("div", { class: "field" }, h("label", { for: "payload" }, "Payload"), payload, size),
    field("job-id", "jobId", jobId, "Your own id for the job (optional)"),
    h("fieldset", {}, h("legend", {}, "Options (empty: the job's defaults)"),
      field("image-tag", "Image tag", tag, "imageTagName"),
      field("variables", "Variables", variables, "One NAME=value a line, over the job's own"),
      field("time-limit", "Time limit (seconds)", timeLimit),
      field("backoff-limit", "Backoff limit (retries)", backoff)),
  ], "Start job", async () => {
    const description = {};
    if (payload.value) description.payload = payload.value;
    if (jobId.value) description.jobId = jobId.value;
    if (tag.value) description.imageTagName = tag.value;
    if (variables.value.trim()) description.variables = parseVariables(variables.value);
    for (const [key, el] of [["timeLimitSeconds", timeLimit], ["backoffLimit", backoff]]) {
      if (el.value !== "") description[key] = Number(el.value);
      // What the browser cannot read as a number goes as text, for the API to word the error.
      else if (el.validity.badInput) description[key] = "not a number";
    }
    const job = await api.createJob(description);
    location.hash = `#/jobs/${encodeURIComponent(job.name)}`;
  }));
}

export function batchForm(main) {
  const text = h("textarea", { id: "batch-json", rows: "16", spellcheck: "false",
    value: BATCH_EXAMPLE });
  fill(main, form("start-batch", "Start a batch", [
    field("batch-json", "Batch (BatchScheduleDescription as JSON)", text,
      "jobScheduleDescriptions: 1 to 500 jobs, each as in Start a job; " +
      "defaultRadixJobComponentConfig applies to all of them"),
  ], "Start batch", async () => {
    const batch = await api.createBatch(text.value);
    location.hash = `#/batches/${encodeURIComponent(batch.name)}`;
  }));
}
