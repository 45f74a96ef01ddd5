// Campaign list with lifecycle buttons per role, a draft form (the rule builder), and live trigger counts.
(function () {
  "use strict";
  const cfg = window.SIGLOC;
  const MARKETER = { draft: [["submitted", "Submit"]], approved: [["test_send", "Test send"]],
    test_send: [["active", "Activate"], ["draft", "Back to draft"]], active: [["paused", "Pause"], ["finished", "Finish"]],
    paused: [["active", "Resume"], ["finished", "Finish"]] };
  const APPROVER = { submitted: [["approved", "Approve"], ["draft", "Send back"]] };

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ headers: { "Content-Type": "application/json" } }, options));
    const body = await response.json();
    if (!response.ok) { throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)); }
    return body;
  }

  async function refresh() {
    const [campaigns, counts] = await Promise.all([api("/api/campaigns"), api("/api/triggers/counts")]);
    const body = document.querySelector("#campaigns tbody");
    body.innerHTML = "";
    for (const c of campaigns) {
      const tr = document.createElement("tr");
      tr.dataset.id = c.id;
      tr.innerHTML = `<td>${c.id}</td><td>${c.name}</td><td>${c.fences.join(", ")}</td>` +
        `<td class="state">${c.state}</td><td class="triggers">${counts.campaigns[c.id] || 0}</td><td class="actions"></td>`;
      const actions = [].concat(cfg.canWrite ? (MARKETER[c.state] || []) : [], cfg.canApprove ? (APPROVER[c.state] || []) : []);
      for (const [to, label] of actions) {
        const b = document.createElement("button");
        b.textContent = label;
        b.dataset.to = to;
        b.onclick = async () => {
          try { await api(`/api/campaigns/${c.id}/transition`, { method: "POST", body: JSON.stringify({ to: to }) }); }
          catch (err) { document.getElementById("campaign-status").textContent = err.message; }
          refresh();
        };
        tr.querySelector(".actions").appendChild(b);
      }
      body.appendChild(tr);
    }
  }

  const form = document.getElementById("new-campaign");
  if (cfg.canWrite) {
    form.hidden = false;
    for (const f of cfg.fences) { form.fence.add(new Option(f, f)); }
    form.onsubmit = async (e) => {
      e.preventDefault();
      const rule = [{ field: "kind", equals: form.kind.value }];
      if (form.roaming.value) { rule.push({ field: "roaming", equals: form.roaming.value }); }
      if (form.from.value && form.to.value) { rule.push({ time: { hours: [[form.from.value, form.to.value]] } }); }
      const doc = { id: form.id.value, name: form.name.value, fences: [form.fence.value], rule: { and: rule },
        cap_per_day: Number(form.cap.value), control_share: Number(form.control.value),
        whitelist: form.whitelist.value.split(",").map(s => s.trim()).filter(Boolean) };
      const status = document.getElementById("campaign-status");
      try { await api("/api/campaigns", { method: "POST", body: JSON.stringify(doc) }); status.textContent = "draft saved"; }
      catch (err) { status.textContent = err.message; }
      refresh();
    };
  }
  refresh();
  setInterval(refresh, 1000);
})();
