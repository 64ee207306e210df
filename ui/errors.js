// Loaded before the app: if anything fails while starting, say so on screen instead of hanging.
window.addEventListener("error", (e) => {
  const box = document.getElementById("loading");
  if (box && !box.hidden) box.textContent = `Ledgerlink could not start: ${e.message}`;
});
window.addEventListener("unhandledrejection", (e) => {
  const box = document.getElementById("loading");
  const why = e.reason && (e.reason.message || e.reason);
  if (box && !box.hidden) box.textContent = `Ledgerlink could not start: ${why}`;
});
