// eshop pages: progressive enhancement only. Every page works without this file.
//
// An element with data-live="/some/events" follows that Server-Sent Events stream. Each
// message is JSON: {"html": "...", "attributes": {"data-status": "confirmed"}}. The html was
// rendered and escaped by the server; it replaces the element's content, and each attribute
// is set on the element. A message with "done": true closes the stream.
"use strict";

function follow(element) {
  const source = new EventSource(element.dataset.live);
  source.onmessage = (message) => {
    let update;
    try {
      update = JSON.parse(message.data);
    } catch (_) {
      return;
    }
    if (typeof update.html === "string") {
      element.innerHTML = update.html;
    }
    for (const [name, value] of Object.entries(update.attributes || {})) {
      element.setAttribute(name, value);
    }
    if (update.done) {
      source.close();
    }
  };
  // The browser reconnects by itself after a network error; a closed page needs nothing.
}

function confirmForms() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }
}

function disableOnSubmit() {
  // A second click does not send a second order (the server refuses it anyway).
  for (const form of document.querySelectorAll("form[method=post]")) {
    form.addEventListener("submit", () => {
      for (const button of form.querySelectorAll("button[type=submit]")) {
        button.disabled = true;
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const element of document.querySelectorAll("[data-live]")) {
    follow(element);
  }
  confirmForms();
  disableOnSubmit();
});
