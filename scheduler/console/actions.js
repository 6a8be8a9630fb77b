// Stop, restart and delete, for jobs, batches and a batch's jobs; a deletion asks first.
import * as api from "./api.js";
import { ENDED, fill, h } from "./dom.js";
import { announce } from "./list.js";

const NOUN = { job: "job", batch: "batch", batchJob: "job" };

/** Ask in a modal dialog (Escape or Cancel say no); resolves to true for yes. */
export function confirmDialog(question, yes) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { "aria-labelledby": "confirm-question" },
      h("p", { id: "confirm-question" }, question),
      h("div", { class: "buttons" },
        h("button", { type: "button", class: "danger", onclick: () => dialog.close("yes") }, yes),
        // Cancel has the focus: Enter on an unread question deletes nothing.
        h("button", { type: "button", autofocus: true, onclick: () => dialog.close("no") },
          "Cancel")));
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "yes");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** The action bar of a job or batch page, and its message line. `update(status)` enables what
 *  the status allows; the API still decides, and its words are shown. */
export function actionBar(target) {
  const noun = NOUN[target.kind];
  const message = h("p", { class: "notice", role: "status" });
  const say = (text, ok) => {
    message.className = `notice ${ok ? "ok" : "error"}`;
    fill(message, text);
  };
  const run = async (button, work) => {
    button.disabled = true;
    try {
      const status = await work();
      if (status) say(status.message, true);
    } catch (error) {
      say(error.message, false);
    } finally {
      button.disabled = false;
      update(current);
    }
  };
  const stop = h("button", { type: "button", onclick: () => run(stop, () => api.stop(target)) },
    `Stop ${noun}`);
  const restart = h("button", { type: "button",
    onclick: () => run(restart, () => api.restart(target)) }, `Restart ${noun}`);
  const remove = target.kind !== "batchJob" && h("button", {
    type: "button", class: "danger",
    onclick: () => run(remove, async () => {
      const sure = await confirmDialog(
        `Delete ${noun} ${target.name}? ${target.kind === "batch" ? "All its jobs go too. " : ""}` +
        "This cannot be undone.", `Delete ${noun}`);
      if (!sure) return null;
      const status = await api.remove(target);
      announce(status.message);
      location.hash = "#/";
      return status;
    }),
  }, `Delete ${noun}`);

  let current = null;
  function update(status) {
    current = status;
    if (!status) return;
    const jobs = target.kind === "batch" ? status.jobStatuses ?? [] : [status];
    stop.disabled = jobs.every((job) => ENDED.has(job.status) || job.status === "Stopping");
    restart.disabled = !jobs.some((job) => ENDED.has(job.status));
  }
  const bar = h("div", { class: "actions" }, stop, restart, remove);
  return { bar, message, update };
}
