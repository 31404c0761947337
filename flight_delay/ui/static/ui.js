// The dashboard's only script: the API key (kept in this tab's sessionStorage, sent only as the
// X-api-key header) and the actions that change something through the REST API. Pages are
// drawn by the server; without a key they are read-only.
"use strict";

(function () {
  const STORE = "flight-delay-api-key";
  const key = () => sessionStorage.getItem(STORE) || "";

  function say(text, failed) {
    const status = document.getElementById("status");
    if (!status) return;
    status.textContent = text;
    status.className = "status" + (failed ? " failed" : " done");
  }

  function showKeyState() {
    const state = document.getElementById("key-state");
    if (state) state.textContent = key() ? "Key set for this tab." : "No key: reading only.";
  }

  async function call(method, url, body) {
    if (!key()) {
      say("Enter an API key above first (it needs the scope this action names).", true);
      return null;
    }
    const options = { method, headers: { "X-api-key": key() } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      say("The API did not answer: " + error, true);
      return null;
    }
    let answer = null;
    try { answer = await response.json(); } catch (_) { /* 204: no body */ }
    if (!response.ok) {
      say(response.status + ": " + ((answer && answer.message) || response.statusText), true);
      return null;
    }
    return answer || {};
  }

  async function deploy(modelId, verb) {
    const done = await call("PUT", "/deploy?model-id=" + encodeURIComponent(modelId));
    if (done) {
      say((verb || "Deployed") + " " + modelId.slice(0, 8) + ". Every API process serves it within a second.");
      setTimeout(() => location.reload(), 1200);
    }
  }

  // a page that needs a key to be read (FLIGHT_DELAY_READ_SCOPE): fetch it again with the key
  async function readWithKey() {
    if (!document.body.dataset.needsKey || !key()) return;
    const response = await fetch(location.href, { headers: { "X-api-key": key() } });
    const text = await response.text();
    const page = new DOMParser().parseFromString(text, "text/html");
    document.title = page.title;
    document.body.replaceWith(document.adoptNode(page.body));
    showKeyState();
    if (!response.ok) say(response.status + ": this key cannot read this page.", true);
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (form.id === "key-form") {
      event.preventDefault();
      const input = form.querySelector("#api-key");
      if (input.value.trim()) sessionStorage.setItem(STORE, input.value.trim());
      input.value = "";
      showKeyState();
      say(key() ? "Key kept for this tab." : "No key entered.", !key());
      readWithKey();
    // hasAttribute, not form.dataset: a form's named inputs ("dataset") shadow its properties
    } else if (form.hasAttribute("data-deploy-form")) {
      event.preventDefault();
      deploy(form.elements.model_id.value);
    } else if (form.hasAttribute("data-compare")) {
      event.preventDefault();
      const body = {
        model_ids: Array.from(form.querySelectorAll("input[name=model_ids]"), (i) => i.value),
        dataset: form.elements.dataset.value,
        holdout: {},
      };
      for (const name of ["since", "until"]) {
        if (form.elements[name].value) body.holdout[name] = form.elements[name].value;
      }
      const queued = await call("POST", "/comparisons", body);
      if (queued) location.assign("/ui/comparisons/" + encodeURIComponent(queued.id));
    }
  });

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.id === "key-forget") {
      sessionStorage.removeItem(STORE);
      showKeyState();
      say("Key forgotten.");
    } else if (button.dataset.deploy) {
      deploy(button.dataset.deploy, button.dataset.verb);
    } else if (button.dataset.runNow) {
      const run = await call("POST", "/schedules/" + encodeURIComponent(button.dataset.runNow) + "/runs");
      if (run) {
        say("Run " + run.number + " started: its challenger is training.");
        setTimeout(() => location.reload(), 1200);
      }
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    showKeyState();
    readWithKey();
  });
})();
