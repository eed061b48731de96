// Progressive enhancement only: every page works without this file.
document.documentElement.classList.add("js");
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit")) {
    field.form.submit();
  }
});
document.addEventListener("click", (event) => {
  if (event.target instanceof Element && event.target.closest("[data-print]")) {
    window.print();
  }
});
// A payment page waiting for the gateway reloads itself until the answer is in.
if (document.querySelector("[data-refresh-while-pending]")) {
  setTimeout(() => window.location.reload(), 3000);
}
