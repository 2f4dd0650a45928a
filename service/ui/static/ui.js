// The dashboard's only script: job progress polling, the sortable table, the predict form.
(function () {
  const bar = document.getElementById("progress");
  if (bar) {
    const terminal = ["succeeded", "failed", "cancelled"];
    const poll = async () => {
      const r = await fetch("/ui/jobs/" + bar.dataset.job + "/status", {credentials: "same-origin"});
      if (!r.ok) return;
      const job = await r.json();
      const p = job.progress || {done: 0, total: 1, message: ""};
      bar.max = p.total; bar.value = p.done;
      document.getElementById("percent").textContent = Math.round(100 * p.done / Math.max(p.total, 1)) + " %";
      document.getElementById("message").textContent = p.message || "";
      document.getElementById("status").textContent = job.status;
      if (job.model_id) {
        document.getElementById("model-link").innerHTML = "";
        const a = document.createElement("a");
        a.href = "/ui/models/" + job.model_id; a.textContent = "Model " + job.model_id;
        document.getElementById("model-link").appendChild(a);
      }
      if (!terminal.includes(job.status)) setTimeout(poll, 400);
    };
    poll();
  }
  document.querySelectorAll("table.sortable th[data-sort]").forEach((th) => {
    th.addEventListener("click", () => {
      const body = th.closest("table").tBodies[0];
      const i = th.cellIndex, down = th.dataset.dir !== "desc";
      th.dataset.dir = down ? "desc" : "asc";
      const rows = Array.from(body.rows);
      rows.sort((a, b) => (parseFloat(b.cells[i].textContent) - parseFloat(a.cells[i].textContent)) * (down ? 1 : -1));
      rows.forEach((r) => body.appendChild(r));
    });
  });
  const form = document.getElementById("predict");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const r = await fetch(form.action, {method: "POST", body: new URLSearchParams(new FormData(form))});
      const body = await r.json();
      document.getElementById("prediction").textContent = r.ok
        ? "prediction: " + body.predictions[0] : (body.detail || "error");
    });
  }
})();
