// The live state: every single job and batch, kept current by the event stream (no polling).
//
// The stream is opened first and the lists read after it is open, so no change falls between
// them; events that arrive while the lists load are replayed on top of them, in order. On every
// (re)connection and on `reset` the lists are read again, so a dropped connection or a restarted
// scheduler heals by itself.
import * as api from "./api.js";
import { readEvents } from "./stream.js";

export const state = {
  jobs: new Map(), // name -> JobStatus of a single job
  batches: new Map(), // name -> BatchStatus, with every job of the batch
  loaded: false,
  connection: "connecting", // "connecting" | "live" | "reconnecting"
  error: null, // the last listing's error, worded by the API
};

const listeners = new Set();
let scheduled = false;

/** Call `listener()` after changes (at most once a frame); returns the unsubscribe. */
export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function changed() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    for (const listener of [...listeners]) listener();
  });
}

/** A batch's job by name, or a single job. */
export function findJob(target) {
  if (target.kind !== "batchJob") return state.jobs.get(target.name);
  return state.batches.get(target.batch)?.jobStatuses?.find((job) => job.name === target.name);
}

/** A job's status as just read from the API; it replaces the one the events gave (only if the
 *  job is still there: a late answer must not bring back a deleted job). */
export function put(target, job) {
  if (target.kind === "batchJob") {
    const batch = state.batches.get(target.batch);
    if (!batch) return;
    batch.jobStatuses = (batch.jobStatuses ?? []).map((j) => (j.name === job.name ? job : j));
  } else if (state.jobs.has(job.name)) {
    state.jobs.set(job.name, job);
  } else {
    return;
  }
  changed();
}

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;
const EVENT_TYPES = new Set(["Create", "Update", "Delete"]);
let queued = null; // events that came while the lists load; null when not loading
let listing = 0; // the latest listing's number: an older one's answer is dropped

/** Follow the event stream for as long as the page lives: read the lists on each connection,
 *  and after a drop or an error answer (a scheduler starting up) connect again, backing off. */
export async function connect() {
  let retryMs = RETRY_MIN_MS;
  for (;;) {
    try {
      const response = await api.events();
      retryMs = RETRY_MIN_MS;
      setConnection("live");
      relist();
      await readEvents(response, (type, data) => {
        if (type === "reset") relist();
        else if (EVENT_TYPES.has(type)) received(type, JSON.parse(data));
      });
    } catch (error) {
      // Dropped, refused or unreachable: the same way back. A refusal (no token) is worded.
      if (error instanceof api.ApiError && error.code === 401) state.error = error.message;
    }
    setConnection("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, retryMs));
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  }
}

function setConnection(connection) {
  state.connection = connection;
  changed();
}

async function relist() {
  const mine = ++listing;
  queued = [];
  try {
    const [jobs, batches] = await Promise.all([api.listJobs(), api.listBatches()]);
    if (mine !== listing) return;
    state.jobs = new Map(jobs.map((job) => [job.name, job]));
    state.batches = new Map(batches.map((batch) => [batch.name, batch]));
    const events = queued;
    queued = null;
    for (const [type, event] of events) apply(type, event);
    state.loaded = true;
    state.error = null;
  } catch (error) {
    if (mine !== listing) return;
    queued = null;
    state.error = error.message;
    setTimeout(() => mine === listing && relist(), RETRY_MIN_MS * 3);
  }
  changed();
}

function received(type, event) {
  if (queued) queued.push([type, event]);
  else apply(type, event);
  changed();
}

/** One `BatchEvent`: a single job is a batch of one (`batchType: "job"`); an `Update` of a batch
 *  carries only its jobs that changed. */
function apply(type, event) {
  const { event: _type, batchType, jobStatuses, ...status } = event;
  if (batchType === "job") {
    if (type === "Delete") state.jobs.delete(status.name);
    else state.jobs.set(status.name, jobStatuses?.[0] ?? status);
    return;
  }
  if (type === "Delete") {
    state.batches.delete(status.name);
    return;
  }
  const jobs = new Map((state.batches.get(status.name)?.jobStatuses ?? []).map((j) => [j.name, j]));
  for (const job of jobStatuses ?? []) jobs.set(job.name, job);
  state.batches.set(status.name, { ...status, jobStatuses: [...jobs.values()] });
}
