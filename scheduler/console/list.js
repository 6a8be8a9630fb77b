// The list of single jobs and batches, newest first: filter by status, search by name or id,
// a page of rows at a time (so a thousand jobs cost no more than fifty).
import { ENDED, STATUSES, badge, duration, fill, h, keepingFocus, time } from "./dom.js";
import { state, subscribe } from "./store.js";

const PAGE_SIZE = 50;
// Kept across visits to other pages, as a person left them.
const view = { status: "", search: "", page: 0 };
let notice = null; // a message for the next visit (what a deletion said)

export function announce(message) {
  notice = message;
}

/** Every row: single jobs and batches together, newest first. Times have whole seconds only;
 *  within one, the order the API listed them in (oldest first, then each new one after them)
 *  decides, reversed: the sort is stable. */
function rows() {
  const all = [
    ...[...state.jobs.values()].map((status) => ({ kind: "job", status })),
    ...[...state.batches.values()].map((status) => ({ kind: "batch", status })),
  ].reverse();
  const created = (row) => row.status.created ?? "";
  return all.sort((a, b) => created(b).localeCompare(created(a)));
}

/** The words a search finds a row by: its name and ids, and those of a batch's jobs. */
function words(row) {
  const { status } = row;
  const jobs = status.jobStatuses ?? [];
  return [status.name, status.jobId, status.batchId, ...jobs.flatMap((j) => [j.name, j.jobId])]
    .filter(Boolean).join("\n").toLowerCase();
}

function matching() {
  const search = view.search.trim().toLowerCase();
  return rows().filter((row) => (!view.status || row.status.status === view.status) &&
    (!search || words(row).includes(search)));
}

function link(row) {
  const { name } = row.status;
  const href = `#/${row.kind === "batch" ? "batches" : "jobs"}/${encodeURIComponent(name)}`;
  return h("a", { href, "data-key": `row:${name}` }, name);
}

function tableRow(row) {
  const s = row.status;
  const id = row.kind === "batch" ? s.batchId : s.jobId;
  const count = row.kind === "batch" ? ` (${(s.jobStatuses ?? []).length} jobs)` : "";
  return h("tr", {},
    h("td", {}, link(row)),
    h("td", { class: "kind" }, row.kind === "batch" ? `Batch${count}` : "Job"),
    h("td", {}, badge(s.status)),
    h("td", {}, id ?? ""),
    h("td", {}, time(s.created)),
    h("td", {}, time(s.started)),
    h("td", {}, time(s.ended)),
    h("td", {}, duration(s.started, s.ended)),
    h("td", { class: "message" }, s.message ?? ""));
}

export function listView(main) {
  const search = h("input", {
    id: "search", type: "search", value: view.search, "aria-describedby": "search-help",
    oninput: () => { view.search = search.value; view.page = 0; render(); },
  });
  const status = h("select", {
    id: "status-filter",
    onchange: () => { view.status = status.value; view.page = 0; render(); },
  }, h("option", { value: "" }, "Any status"), STATUSES.map((s) => h("option", { value: s }, s)));
  status.value = view.status;
  const summary = h("p", { id: "summary", "aria-live": "polite" });
  const body = h("tbody");
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });

  fill(main,
    h("h2", { tabindex: "-1" }, "Jobs and batches"),
    notice && h("p", { class: "notice ok", role: "status" }, notice),
    h("div", { class: "filters" },
      h("div", { class: "field" }, h("label", { for: "search" }, "Search"), search,
        h("span", { id: "search-help", class: "help" }, "Name, jobId or batchId")),
      h("div", { class: "field" }, h("label", { for: "status-filter" }, "Status"), status)),
    summary,
    h("div", { class: "scroll" },
      h("table", { id: "jobs" },
        h("caption", { class: "visually-hidden" }, "Jobs and batches, newest first"),
        h("thead", {}, h("tr", {},
          ["Name", "Kind", "Status", "jobId / batchId", "Created", "Started", "Ended",
            "Duration", "Message"].map((title) => h("th", { scope: "col" }, title)))),
        body)),
    pager);
  notice = null;

  function render() {
    const found = matching();
    const pages = Math.max(1, Math.ceil(found.length / PAGE_SIZE));
    view.page = Math.min(view.page, pages - 1);
    const first = view.page * PAGE_SIZE;
    const shown = found.slice(first, first + PAGE_SIZE);
    const total = state.jobs.size + state.batches.size;
    if (!state.loaded) fill(summary, state.error ? `Cannot list jobs: ${state.error}` : "Loading…");
    else if (!found.length) fill(summary, total ? "Nothing matches the filter." : "No jobs yet.");
    else fill(summary, `Showing ${first + 1}–${first + shown.length} of ${found.length}` +
      (found.length < total ? ` (filtered from ${total})` : ""));
    keepingFocus(main, () => {
      fill(body, shown.map(tableRow));
      fill(pager, pages > 1 && [
        h("button", { type: "button", "data-key": "prev", disabled: view.page === 0,
          onclick: () => { view.page -= 1; render(); } }, "Previous"),
        h("span", {}, ` Page ${view.page + 1} of ${pages} `),
        h("button", { type: "button", "data-key": "next", disabled: view.page >= pages - 1,
          onclick: () => { view.page += 1; render(); } }, "Next"),
      ]);
    });
  }

  render();
  const unsubscribe = subscribe(render);
  // Durations of running jobs grow: redraw the page each second while one is shown.
  const ticking = setInterval(() => {
    if ([...body.querySelectorAll(".badge")].some((b) => !ENDED.has(b.textContent))) render();
  }, 1000);
  return () => { unsubscribe(); clearInterval(ticking); };
}
