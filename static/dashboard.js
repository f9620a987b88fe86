// Gatehouse dashboard behaviour, loaded from this origin (the pages allow no inline
// script). Every page works without it; it adds copy buttons, confirmations before
// destructive forms, and charts that refresh themselves.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // <button data-copy="text">: copies the text, then says so for a moment.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const label = button.textContent;
      try {
        await navigator.clipboard.writeText(button.dataset.copy);
        button.textContent = "Copied";
      } catch (_) {
        button.textContent = "Select and copy";
      }
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  }

  // <form data-confirm="question">: asks before sending.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }

  // <img data-refresh="seconds">: reloads the chart while the page is visible.
  for (const img of document.querySelectorAll("img[data-refresh]")) {
    const seconds = Math.max(5, Number(img.dataset.refresh) || 30);
    const base = img.getAttribute("src");
    setInterval(() => {
      if (document.visibilityState !== "visible") {
        return;
      }
      const sep = base.includes("?") ? "&" : "?";
      img.src = `${base}${sep}t=${Date.now()}`;
    }, seconds * 1000);
  }
});
