// keyplane admin: small enhancements; every form works without this file.
"use strict";

function copyToken(button) {
  const source = document.getElementById(button.dataset.copy);
  const status = document.getElementById("copy-status");
  const text = source.textContent.trim();
  // The outcome, in words and in its colour: green only when the copy worked.
  const done = (message, outcome) => {
    if (!status) return;
    status.textContent = message;
    status.dataset.outcome = outcome;
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(
      () => done("Copied to the clipboard.", "copied"),
      () => done("Copy failed: select the token and copy it by hand.", "failed"),
    );
  } else {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (document.execCommand("copy")) done("Copied to the clipboard.", "copied");
    else done("Selected: press Ctrl+C to copy.", "selected");
  }
}

function askFirst(form) {
  // The server asks on a page of its own when JavaScript is off; here, a dialog.
  const dialog = document.getElementById("confirm-dialog");
  form.addEventListener("submit", (event) => {
    if (form.dataset.confirmed === "yes") return;
    event.preventDefault();
    const select = form.querySelector("select[name=grace]");
    const option = select ? select.selectedOptions[0] : null;
    document.getElementById("confirm-text").textContent =
      (option && option.dataset.question) || form.dataset.confirm;
    const submitter = form.querySelector("button[type=submit]");
    document.getElementById("confirm-yes").textContent = submitter ? submitter.textContent : "Confirm";
    dialog.returnValue = "";
    dialog.onclose = () => {
      if (dialog.returnValue !== "confirm") return;
      const confirmed = document.createElement("input");
      confirmed.type = "hidden";
      confirmed.name = "confirmed";
      confirmed.value = "yes";
      form.appendChild(confirmed);
      form.dataset.confirmed = "yes";
      form.requestSubmit();
    };
    dialog.showModal();
  });
}

function customDays() {
  const custom = document.querySelector("[data-custom-days]");
  if (!custom) return;
  const radios = document.querySelectorAll("input[name=expiry]");
  const update = () => {
    const chosen = document.getElementById("expiry-custom").checked;
    custom.hidden = !chosen;
    document.getElementById("custom-days").required = chosen;
  };
  radios.forEach((radio) => radio.addEventListener("change", update));
  update();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", () => copyToken(button));
  });
  document.querySelectorAll("form[data-confirm]").forEach(askFirst);
  const tokenDialog = document.querySelector("dialog[data-modal][open]");
  if (tokenDialog) {
    tokenDialog.close();
    tokenDialog.showModal();
    // However it is closed (Escape included), the token leaves the page. The
    // close event of the close() above arrives later, while it is open again.
    tokenDialog.addEventListener("close", () => {
      if (!tokenDialog.open) window.location.assign("/admin/keys");
    });
  }
  customDays();
  document.documentElement.dataset.enhanced = "yes";  // read by the browser tests
});
