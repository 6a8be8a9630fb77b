// The console's entry: the header (what this scheduler serves, the stream's state) and the
// hash routes: #/ (list), #/jobs/<name>, #/batches/<name>, #/batches/<b>/jobs/<j>, #/new,
// #/new-batch, #/timeline?<window>.
import { activityView } from "./activity.js";
import * as api from "./api.js";
import { batchView, jobView } from "./detail.js";
import { fill, h } from "./dom.js";
import { batchForm, jobForm } from "./forms.js";
import { listView } from "./list.js";
import { connect, state, subscribe } from "./store.js";

const main = document.getElementById("main");
let info = null;
let leave = null; // the current page's cleanup
let first = true;

// A job's or batch's name in a route: only what the API names them (a DNS label, nothing to
// decode). Anything else, `.` and `..` above all, is "Not found", never a page whose buttons
// would act on another path.
const NAME = api.NAME.source.slice(1, -1);
const ROUTES = [
  [/^#?\/?$/, () => [listView(main), "Jobs and batches"]],
  [new RegExp(`^#/jobs/(${NAME})$`), ([, name]) =>
    [jobView(main, { kind: "job", name }), `Job ${name}`]],
  [new RegExp(`^#/batches/(${NAME})$`), ([, name]) => [batchView(main, name), `Batch ${name}`]],
  [new RegExp(`^#/batches/(${NAME})/jobs/(${NAME})$`), ([, batch, name]) =>
    [jobView(main, { kind: "batchJob", batch, name }), `Job ${name}`]],
  [/^#\/new$/, () => [jobForm(main, info), "Start a job"]],
  [/^#\/new-batch$/, () => [batchForm(main), "Start a batch"]],
  [/^#\/timeline(?:\?(.*))?$/, ([, query]) => [activityView(main, query), "Timeline"]],
];

function route() {
  leave?.();
  leave = null;
  const hash = location.hash;
  for (const [pattern, show] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    const [cleanup, title] = show(match);
    leave = cleanup ?? null;
    document.title = `${title} · ${info?.job ?? "job scheduler"}`;
    for (const link of document.querySelectorAll("nav a")) {
      const here = (hash || "#/").split("?")[0];
      if (link.getAttribute("href") === here) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    // After a navigation, the page's heading gets the focus, so keyboard and screen reader
    // users start there; not on the first load.
    if (!first) main.querySelector("h2")?.focus();
    first = false;
    return;
  }
  fill(main, h("h2", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the list")));
}

const CONNECTION = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…" };

function showConnection() {
  const el = document.getElementById("connection");
  const text = CONNECTION[state.connection];
  if (el.textContent !== text) el.textContent = text;
  el.dataset.state = state.connection;
}

async function showInfo() {
  try {
    info = await api.info();
  } catch {
    return; // the header stays generic; the list says what is wrong
  }
  fill(document.getElementById("job-name"), `Job ${info.job}`);
  fill(document.getElementById("info"), [["App", info.app], ["Environment", info.environment],
    ["Backend", info.backend], ["Version", info.version]]
    .map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value))));
  document.title = document.title.replace("job scheduler", info.job);
}

window.addEventListener("hashchange", route);
subscribe(showConnection);
connect();
showInfo();
route();
