// The scheduler's public API, as a script would call it. URLs are relative to /console/, so the
// console also works behind a proxy that serves the scheduler under a path prefix.
import { authorizedFetch } from "./auth.js";

const BASE = "../api/v1";

/** An API error, with the message as the API words it (its `Status.message`), and each thing
 *  wrong when the API names them (`details.causes`: field, pointer, rule, value, message). */
export class ApiError extends Error {
  constructor(code, message, causes = []) {
    super(message);
    this.code = code;
    this.causes = causes;
  }
}

async function failure(response) {
  const text = await response.text();
  try {
    const status = JSON.parse(text);
    if (typeof status?.message === "string") {
      const causes = Array.isArray(status.details?.causes) ? status.details.causes : [];
      return new ApiError(response.status, status.message, causes);
    }
  } catch {
    // not a Status body: say what HTTP said
  }
  return new ApiError(response.status, `${response.status} ${response.statusText}`.trim());
}

/** One call; a body goes as JSON (a string is sent as it is), state changes only ever so. */
async function call(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await authorizedFetch(BASE + path, init);
  } catch {
    throw new ApiError(0, "the scheduler cannot be reached");
  }
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** A job's or batch's name as the API makes them: a DNS label. Nothing else ever becomes a path
 *  segment: `.` or `..` (as such or as `%2e`) would make the browser drop or climb a segment, so
 *  "stop job ." would stop every job. */
export const NAME = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

function segment(name) {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new ApiError(0, `not a job or batch name: ${JSON.stringify(name)}`);
  }
  return encodeURIComponent(name);
}

/** A target is {kind: "job" | "batch" | "batchJob", name, batch}: where its paths start. */
export function pathOf(target) {
  if (target.kind === "batch") return `/batches/${segment(target.name)}`;
  if (target.kind === "batchJob") {
    return `/batches/${segment(target.batch)}/jobs/${segment(target.name)}`;
  }
  return `/jobs/${segment(target.name)}`;
}

export const info = () => call("GET", "/info");
export const listJobs = () => call("GET", "/jobs");
export const listBatches = () => call("GET", "/batches");
export const get = async (target) => call("GET", pathOf(target));
export const createJob = (description) => call("POST", "/jobs", description);
export const createBatch = (json) => call("POST", "/batches", json);
export const stop = async (target) => call("POST", `${pathOf(target)}/stop`);
export const restart = async (target) => call("POST", `${pathOf(target)}/restart`);
export const remove = async (target) => call("DELETE", pathOf(target));
/** The job's payload schema, or null when it has none. */
export async function payloadSchema() {
  try {
    return await call("GET", "/payload-schema");
  } catch (failure) {
    if (failure.code === 404) return null;
    throw failure;
  }
}
/** A payload checked as a create would check it (size, then schema); nothing is created. */
export const checkPayload = (payload) => call("POST", "/payload-schema/check", { payload });
/** What a job was asked to be (its options, the names of its variables; never their values nor
 *  the payload): a batch's job too, by its full name. */
export const request = async (target) => call("GET", `/jobs/${segment(target.name)}/request`);

/** The event stream's response (read it with stream.js), or an ApiError. */
export async function events(signal) {
  let response;
  try {
    response = await authorizedFetch(`${BASE}/events`, {
      headers: { Accept: "text/event-stream" }, cache: "no-store", signal,
    });
  } catch {
    throw new ApiError(0, "the scheduler cannot be reached");
  }
  if (!response.ok) throw await failure(response);
  return response;
}

/** The job's result: its text, or null when it wrote none; throws while it runs (409). */
export async function result(target) {
  const response = await authorizedFetch(`${BASE}${pathOf(target)}/result`);
  if (response.status === 404) return null;
  if (!response.ok) throw await failure(response);
  return await response.text();
}

/** Stream a job's log into `onText` until it ends or `signal` aborts. `attempt` is a podIndex
 *  (that attempt only); without it the log follows the job's attempts while it runs. Before any
 *  text, `onOpen({kept, truncated})` is told whether the attempt's record serves the log (its
 *  pod is gone) and whether the record kept only its end. */
export async function followLog(target, attempt, onText, signal, onOpen = () => {}) {
  const query = new URLSearchParams({ follow: "true" });
  if (attempt !== null) query.set("attempt", String(attempt));
  const response = await authorizedFetch(`${BASE}${pathOf(target)}/logs?${query}`, { signal });
  if (!response.ok) throw await failure(response);
  onOpen({
    kept: response.headers.get("X-Log-Source") === "record",
    truncated: response.headers.get("X-Log-Truncated") === "true",
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    onText(decoder.decode(value, { stream: true }));
  }
  onText(decoder.decode());
}
