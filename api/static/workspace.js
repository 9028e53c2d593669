// The workspace's passkey ceremonies (WebAuthn): the only script of the workspace.
// Each button names the URL of its options and of its answer; the server keeps the challenge.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  async function post(url, body) {
    var response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(body || {}),
    });
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      throw new Error(data.detail || "HTTP " + response.status);
    }
    return data;
  }

  async function register(options) {
    var publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
    return navigator.credentials.create({ publicKey: publicKey });
  }

  async function signIn(options) {
    var publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
    return navigator.credentials.get({ publicKey: publicKey });
  }

  async function ceremony(button) {
    var status = document.getElementById(button.dataset.status);
    button.disabled = true;
    try {
      var options = await post(button.dataset.options);
      var make = button.dataset.passkey === "register" ? register : signIn;
      var credential = await make(options);
      var done = await post(button.dataset.finish, credential.toJSON());
      window.location.assign(done.redirect);
    } catch (error) {
      status.textContent = button.dataset.failed + " " + error.message;
      button.disabled = false;
    }
  }

  document.querySelectorAll("button[data-passkey]").forEach(function (button) {
    button.addEventListener("click", function () { ceremony(button); });
  });
})();
