// Server-Sent Events read with fetch() rather than EventSource, which cannot send a header: so
// the event stream carries the API token like every other call.

/** Read the event stream of `response` until it ends, calling `onEvent(type, data)` for each
 *  event, parsed as the HTML standard says (`id:` and `retry:` are not needed here: the console
 *  reads the lists again on each connection). */
export async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let type = "";
  let data = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const raw of lines) {
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (line === "") {
        if (data.length) onEvent(type || "message", data.join("\n"));
        type = "";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue; // a comment: the heartbeat
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = text;
      else if (field === "data") data.push(text);
    }
  }
}
