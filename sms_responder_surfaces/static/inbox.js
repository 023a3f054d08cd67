// The SMS inbox's one script. The page works without it (forms and links); it adds:
// - live updates: every second it asks /inbox/updates whether what the page shows has changed,
//   and if so fetches the page again and swaps its live part (#live), rendered and escaped by
//   the server's templates: no text from a message is ever put into HTML here; the same answer
//   carries how many conversations are unread for this person, for the title's "(N) ";
// - the segment count of the text being typed, asked of the server (one counter, in Python);
// - a saved reply put into the Message box as it is chosen (as text: value, never HTML);
// - the Assignee picked takes effect at once; Send at is read in this browser's time zone;
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

function showUnread(count) {
  document.title = (count > 0 ? `(${count}) ` : "") + document.body.dataset.title;
}

async function refreshWhenChanged() {
  const url = document.body.dataset.updates;
  if (!url) return;
  try {
    const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (answer.status === 401) { window.location.assign(window.location.href); return; }  // logged out
    if (!answer.ok) return;
    const { version, unread } = await answer.json();
    showUnread(unread);
    if (!version || version === document.body.dataset.version) return;
    const page = await fetch(window.location.href, { credentials: "same-origin" });
    if (!page.ok) return;
    const fresh = new DOMParser().parseFromString(await page.text(), "text/html");  // parsed, never run
    const live = fresh.getElementById("live");
    if (live) {
      document.getElementById("live").replaceWith(document.importNode(live, true));
      localTimes(document.getElementById("live"));
    }
    document.body.dataset.version = fresh.body.dataset.version;
    document.title = fresh.title;  // read as the page was fetched: opening a conversation reads it
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

// A saved reply goes where the cursor was in the Message box (at its end if it was never there). While
// the person moves through the list (arrow keys choose as they move), each choice replaces the last
// one, as long as the box still holds what was put in.
function savedReplies() {
  const picker = document.querySelector("select[data-into]");
  const box = picker && document.getElementById(picker.dataset.into);
  if (!box) return;
  let placed = null;  // { start, end, value } of the last reply put in
  let visited = false;
  box.addEventListener("focus", () => { visited = true; });
  picker.addEventListener("change", () => {
    const option = picker.selectedOptions[0];
    let text = option && option.value ? option.dataset.text : "";
    let start = box.selectionStart;
    let end = box.selectionEnd;
    if (placed && box.value === placed.value) {
      ({ start, end } = placed);
    } else if (!visited) {
      start = end = box.value.length;
      if (text && start > 0 && !/\s$/.test(box.value)) text = ` ${text}`;
    }
    box.setRangeText(text, start, end, "end");
    placed = { start, end: start + text.length, value: box.value };
    box.dispatchEvent(new Event("input", { bubbles: true }));  // the segment count
  });
}

document.addEventListener("change", (event) => {
  const picked = event.target;
  if (picked.matches && picked.matches("select[data-submit-on-change]")) picked.form.requestSubmit();
});

document.addEventListener("DOMContentLoaded", () => {
  document.documentElement.classList.add("scripted");  // the buttons the script makes needless are hidden
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  for (const field of document.querySelectorAll("input.time-zone")) field.value = zone;
  localTimes(document);
  countSegments();
  savedReplies();
  window.setTimeout(refreshWhenChanged, POLL_MS);
});
