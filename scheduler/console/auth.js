// The API token, for a scheduler that has one: asked for once, when a call answers 401, kept for
// this tab only (sessionStorage: gone when the tab closes, never sent by the browser by itself),
// and sent with every call. Calls that meet a 401 together share one prompt.
import { h } from "./dom.js";

const KEY = "job-scheduler.api-token";
let kept = null; // where sessionStorage is not available
let asking = null; // the open prompt: a promise of whether a token was given
let declined = false; // the prompt was cancelled: not asked again in this page

function token() {
  try {
    return sessionStorage.getItem(KEY) ?? kept;
  } catch {
    return kept;
  }
}

function keep(value) {
  kept = value;
  try {
    sessionStorage.setItem(KEY, value);
  } catch {
    // storage is off: the token lives as long as this page
  }
}

/** fetch() with the token, if there is one; on a 401 asks for it and tries again. A call whose
 *  prompt is cancelled gets the 401 answer. */
export async function authorizedFetch(url, init = {}) {
  for (;;) {
    const sent = token();
    const headers = new Headers(init.headers);
    if (sent) headers.set("Authorization", `Bearer ${sent}`);
    const response = await fetch(url, { ...init, headers });
    if (response.status !== 401) return response;
    if (!(await ask(sent))) return response;
  }
}

function ask(refused) {
  // Another call's prompt got a token since this one was sent: try with that.
  if (token() !== refused) return Promise.resolve(true);
  if (declined) return Promise.resolve(false);
  asking ??= prompt(refused !== null).finally(() => {
    asking = null;
  });
  return asking;
}

/** A modal dialog asking for the token; resolves to true once one is kept. */
function prompt(refused) {
  return new Promise((resolve) => {
    const input = h("input", {
      id: "api-token", type: "password", autocomplete: "off", spellcheck: "false",
      "aria-describedby": "api-token-help",
    });
    const dialog = h("dialog", { "aria-labelledby": "api-token-title" },
      h("h2", { id: "api-token-title" }, "API token"),
      h("form", {
        novalidate: true,
        // Never a browser form submission (the page's CSP forbids those): the token is kept here.
        onsubmit: (event) => {
          event.preventDefault();
          const value = input.value.trim();
          if (!value) return input.focus();
          keep(value);
          dialog.close("token");
        },
      },
      h("p", { id: "api-token-help", role: refused ? "alert" : null },
        refused
          ? "The scheduler refused that token. Enter its API token:"
          : "This scheduler needs its API token. It is kept in this tab only, until it closes."),
      h("div", { class: "field" }, h("label", { for: "api-token" }, "Token"), input),
      h("div", { class: "buttons" },
        h("button", { type: "submit" }, "Use token"),
        h("button", { type: "button", onclick: () => dialog.close("cancel") }, "Cancel"))));
    dialog.addEventListener("close", () => {
      dialog.remove();
      const given = dialog.returnValue === "token";
      declined = !given;
      resolve(given);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}
