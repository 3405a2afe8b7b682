// A campaign's contacts not yet dispositioned (GET /api/v1/campaign/<id>/contacts/, DataTables'
// server-side shape: rows of [id, phone, other columns…, ""]), a page at a time, each with a
// button that calls it (makeCall with idContact).
"use strict";

window.ConsoleContacts = (function () {
  const PAGE = 10;

  function Contacts(api, elements, t, call) {
    this.api = api;
    this.el = elements;   // {form, campaign, search, body, status, prev, next}
    this.t = t;
    this.call = call;     // call(campaignId, phone, contactId)
    this.start = 0;
    this.draw = 0;
    const self = this;
    this.el.form.addEventListener("submit", function (e) { e.preventDefault(); self.start = 0; self.load(); });
    this.el.prev.addEventListener("click", function () { self.start = Math.max(0, self.start - PAGE); self.load(); });
    this.el.next.addEventListener("click", function () { self.start += PAGE; self.load(); });
  }

  Contacts.prototype.load = async function () {
    const campaign = this.el.campaign.value;
    if (!campaign) { return; }
    const draw = ++this.draw;
    const query = new URLSearchParams({ draw: String(draw), start: String(this.start), length: String(PAGE),
                                        "search[value]": this.el.search.value.trim() });
    const answer = await this.api.get("/api/v1/campaign/" + encodeURIComponent(campaign) + "/contacts/?" + query);
    if (draw !== this.draw) { return; }   // a newer search answered first
    const body = answer.body || {};
    if (answer.status !== 200 || !Array.isArray(body.data)) {
      this.el.status.textContent = this.t("contacts_failed");
      return;
    }
    this.show(campaign, body);
  };

  Contacts.prototype.show = function (campaign, body) {
    const self = this;
    this.el.body.replaceChildren();
    body.data.forEach(function (row) {
      const id = row[0], phone = row[1];
      const others = row.slice(2).filter(function (v) { return v && v !== "---"; });
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      name.textContent = others.join(" · ");
      const number = document.createElement("td");
      number.textContent = phone;
      const action = document.createElement("td");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "go";
      button.textContent = self.t("call");
      button.setAttribute("aria-label", self.t("call") + " " + phone);
      button.dataset.contact = id;
      button.addEventListener("click", function () { self.call(campaign, phone, id); });
      action.append(button);
      tr.append(name, number, action);
      self.el.body.append(tr);
    });
    const last = Math.min(this.start + body.data.length, body.recordsFiltered);
    this.el.status.textContent = body.recordsFiltered
      ? this.t("contacts_shown").replace("{from}", this.start + 1).replace("{to}", last)
          .replace("{total}", body.recordsFiltered)
      : this.t("contacts_none");
    this.el.prev.disabled = this.start === 0;
    // (The total may be a few seconds old: the server caches it; a short page is the last.)
    this.el.next.disabled = body.data.length < PAGE || last >= body.recordsFiltered;
  };

  return Contacts;
})();
