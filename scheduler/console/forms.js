// Start a job (payload, jobId and the common options) or a batch (a JSON document). What the
// API answers is shown in its own words. A job with a payload schema has its payload checked
// before it is sent: parsed here, then checked by the scheduler as a create would check it.
import * as api from "./api.js";
import { bytes, fill, h } from "./dom.js";

const encoder = new TextEncoder();
// Typing pauses this long before the payload is checked against the schema.
const CHECK_DELAY_MS = 400;
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
 *  forbids those) and shows the API's answer if it fails; `blocked()` keeps its button off. */
function form(id, title, fields, label, send, blocked = () => false) {
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
        button.disabled = blocked();
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

/** The schema's title and description, told beside the payload field. */
function schemaNote(id, schema) {
  if (!schema) return null;
  const title = typeof schema.title === "string" ? schema.title : "";
  const description = typeof schema.description === "string" ? schema.description : "";
  return h("p", { id, class: "help schema" },
    h("strong", {}, title ? `Payload schema: ${title}` : "Payload schema"),
    description && ` — ${description}`);
}

/** Each cause of a refusal (a broken rule of the schema) as a list item. */
function causeItems(causes, withField) {
  return causes.map((cause) => h("li", {},
    withField && cause.field && h("span", { class: "cause-field" }, cause.field),
    h("code", { class: "cause-pointer" }, cause.pointer || "(the payload)"),
    " ", h("span", { class: "cause-rule" }, cause.rule), " ", cause.message));
}

/** What is wrong with `text` as the job's payload: [] when the scheduler takes it, or knows of
 *  nothing wrong (too large is the size line's to say, and the API's on sending). */
async function payloadProblems(text) {
  if (!text) return [{ pointer: "", rule: "required", message: "a payload (JSON) is required" }];
  try {
    JSON.parse(text);
  } catch (failure) {
    return [{ pointer: "", rule: "json", message: `not JSON: ${failure.message}` }];
  }
  try {
    await api.checkPayload(text);
    return [];
  } catch (failure) {
    return failure.causes?.length ? failure.causes : [];
  }
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
  let schema = null;
  const verdict = h("span", { id: "payload-check", class: "help", role: "status" });
  const problems = h("ul", { id: "payload-problems", class: "problems", hidden: true });
  let found = [];
  let asked = 0;
  let timer = null;
  const show = (causes) => {
    found = causes;
    fill(problems, causeItems(causes, false));
    problems.hidden = !causes.length;
    fill(verdict, causes.length
      ? `Does not satisfy the payload schema: ${causes.length} problem` +
        (causes.length === 1 ? "" : "s")
      : "Satisfies the payload schema");
    verdict.classList.toggle("over", causes.length > 0);
    if (causes.length) payload.setAttribute("aria-invalid", "true");
    else payload.removeAttribute("aria-invalid");
    submit.disabled = causes.length > 0;
  };
  // The last check asked for wins: an answer to an earlier text is dropped.
  const check = async () => {
    clearTimeout(timer);
    const mine = ++asked;
    const causes = await payloadProblems(payload.value);
    if (mine === asked) show(causes);
    return causes;
  };
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(check, CHECK_DELAY_MS);
  };
  // The schema's note, the verdict and the problems, once the job is known to have a schema.
  const told = h("div", {});
  const useSchema = (known) => {
    if (!known) return;
    schema = known;
    fill(told, schemaNote("payload-schema", known), verdict, problems);
    payload.setAttribute("aria-describedby",
      "payload-help payload-schema payload-check payload-problems");
    if (payload.value) later();
  };
  payload.setAttribute("aria-describedby", "payload-help");
  payload.addEventListener("input", showSize);
  payload.addEventListener("input", () => schema && later());
  showSize();
  // Opened before the header's info has come (a page loaded at #/new): the form asks itself.
  if (info) useSchema(info.payloadSchema ?? null);
  else api.payloadSchema().then(useSchema, () => {});
  const input = (id, attrs = {}) => h("input", { id, type: "text", ...attrs });
  const jobId = input("job-id");
  const tag = input("image-tag");
  const variables = h("textarea", { id: "variables", rows: "3", spellcheck: "false" });
  const timeLimit = input("time-limit", { type: "number", min: "1", inputmode: "numeric" });
  const backoff = input("backoff-limit", { type: "number", min: "0", inputmode: "numeric" });

  const started = form("start-job", "Start a job", [
    h("div", { class: "field" }, h("label", { for: "payload" }, "Payload"), payload, size, told),
    field("job-id", "jobId", jobId, "Your own id for the job (optional)"),
    h("fieldset", {}, h("legend", {}, "Options (empty: the job's defaults)"),
      field("image-tag", "Image tag", tag, "imageTagName"),
      field("variables", "Variables", variables, "One NAME=value a line, over the job's own"),
      field("time-limit", "Time limit (seconds)", timeLimit),
      field("backoff-limit", "Backoff limit (retries)", backoff)),
  ], "Start job", async () => {
    if (schema && (await check()).length) {
      payload.focus();
      throw new Error("The payload does not satisfy the job's payload schema: " +
        "see its problems under it");
    }
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
  }, () => found.length > 0);
  const submit = started.querySelector('button[type="submit"]');
  fill(main, started);
}

export function batchForm(main) {
  const text = h("textarea", { id: "batch-json", rows: "16", spellcheck: "false",
    value: BATCH_EXAMPLE });
  const note = h("div", {});
  // A refusal names each job's payload problems (all jobs at once): listed by the field.
  const problems = h("ul", { id: "batch-problems", class: "problems", hidden: true });
  const showProblems = (causes) => {
    fill(problems, causeItems(causes, true));
    problems.hidden = !causes.length;
    if (causes.length) text.setAttribute("aria-invalid", "true");
    else text.removeAttribute("aria-invalid");
  };
  text.addEventListener("input", () => showProblems([]));
  fill(main, form("start-batch", "Start a batch", [
    field("batch-json", "Batch (BatchScheduleDescription as JSON)", text,
      "jobScheduleDescriptions: 1 to 500 jobs, each as in Start a job; " +
      "defaultRadixJobComponentConfig applies to all of them"),
    note, problems,
  ], "Start batch", async () => {
    showProblems([]);
    try {
      const batch = await api.createBatch(text.value);
      location.hash = `#/batches/${encodeURIComponent(batch.name)}`;
    } catch (failure) {
      showProblems(failure.causes ?? []);
      throw failure;
    }
  }));
  api.payloadSchema().then((schema) => {
    if (!schema) return;
    fill(note, schemaNote("batch-schema", schema));
    text.setAttribute("aria-describedby", "batch-json-help batch-schema batch-problems");
  }, () => {});
}
