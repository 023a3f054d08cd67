// The SMS inbox's one script. The page works without it (forms and links); it adds:
// - live updates: every second it asks /inbox/updates whether what the page shows has changed,
//   and if so fetches the page again and swaps its live part (#live), rendered and escaped by
//   the server's templates: no text from a message is ever put into HTML here;
// - the segment count of the text being typed, asked of the server (one counter, in Python);
// - times in the reader's own time zone.
"use strict";

const POLL_MS = 1000;

function localTimes(root) {
  for (const element of root.querySelectorAll("time[datetime]")) {
    const moment = new Date(element.dateTime);
    element.textContent = moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    element.title = element.dateTime;
  }
}

async function refreshWhenChanged() {
  const url = document.body.dataset.updates;
  if (!url) return;
  try {
    const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (answer.status === 401) { window.location.assign(window.location.href); return; }  // logged out
    if (!answer.ok) return;
    const { version } = await answer.json();
    if (version === document.body.dataset.version) return;
    const page = await fetch(window.location.href, { credentials: "same-origin" });
    if (!page.ok) return;
    const fresh = new DOMParser().parseFromString(await page.text(), "text/html");  // parsed, never run
    const live = fresh.getElementById("live");
    if (live) {
      document.getElementById("live").replaceWith(document.importNode(live, true));
      localTimes(document.getElementById("live"));
    }
    document.body.dataset.version = fresh.body.dataset.version;
  } catch (error) {
    // offline for a moment: the next poll tries again
  } finally {
    window.setTimeout(refreshWhenChanged, POLL_MS);
  }
}

function countSegments() {
  const box = document.getElementById("message");
  const shown = document.getElementById("segments");
  if (!box || !shown) return;
  let waiting = null;
  const update = async () => {
    const text = box.value;
    if (!text) { shown.textContent = ""; return; }
    const answer = await fetch(`${shown.dataset.url}?${new URLSearchParams({ text })}`, { credentials: "same-origin" });
    if (!answer.ok || box.value !== text) return;
    const { segments, encoding, characters } = await answer.json();
    shown.textContent = `${characters} characters · ${segments} ${segments === 1 ? "segment" : "segments"} (${encoding})`;
  };
  box.addEventListener("input", () => { window.clearTimeout(waiting); waiting = window.setTimeout(update, 150); });
  update();
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  countSegments();
  window.setTimeout(refreshWhenChanged, POLL_MS);
});
