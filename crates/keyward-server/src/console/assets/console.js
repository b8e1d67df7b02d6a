// Keyward console: select-all, copy buttons, confirmation dialogs and
// auto-submitting selects. The pages work without it; this only saves clicks.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const selectAll = document.querySelector("[data-select-all]");
  const boxes = () => Array.from(document.querySelectorAll("input[name=ids]"));
  const refreshCount = () => {
    const n = boxes().filter((b) => b.checked).length;
    document.querySelectorAll("[data-selected-count]").forEach((el) => {
      el.textContent = n === 0 ? "No keys selected" : n === 1 ? "1 key selected" : `${n} keys selected`;
    });
    document.querySelectorAll("[data-needs-selection]").forEach((b) => { b.disabled = n === 0; });
    if (selectAll) {
      selectAll.checked = n > 0 && n === boxes().length;
      selectAll.indeterminate = n > 0 && n < boxes().length;
    }
  };
  if (selectAll) {
    selectAll.addEventListener("change", () => {
      boxes().forEach((b) => { b.checked = selectAll.checked; });
      refreshCount();
    });
  }
  boxes().forEach((b) => b.addEventListener("change", refreshCount));
  refreshCount();

  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  });

  // A button with data-confirm asks first, in a dialog that names what will happen.
  const dialog = document.getElementById("confirm-dialog");
  document.querySelectorAll("button[data-confirm]").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (!dialog || button.dataset.confirmed === "yes") return;
      event.preventDefault();
      let text = button.dataset.confirm;
      if (text.includes("{n}")) {
        const n = boxes().filter((b) => b.checked).length;
        text = text.replace("{n}", n === 1 ? "1 key" : `${n} keys`);
      }
      document.getElementById("confirm-text").textContent = text;
      document.getElementById("confirm-ok").textContent = button.dataset.confirmLabel || "Delete";
      dialog.returnValue = "";
      dialog.showModal();
      dialog.addEventListener("close", () => {
        if (dialog.returnValue !== "ok") return;
        const form = button.form;
        const flag = document.createElement("input");
        flag.type = "hidden";
        flag.name = "confirmed";
        flag.value = "yes";
        form.appendChild(flag);
        button.dataset.confirmed = "yes";
        form.requestSubmit(button);
      }, { once: true });
    });
  });

  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.requestSubmit());
  });
});
