// The CRM pop (contract-calls §6): the call's campaign site with trigger Agente (a button the
// agent presses) or Automático (opened when the agent answers), embedded in the page or in a
// new tab, with the parameters GET /api/v1/calls/<id>/crm_interaction/ gives. A POST is a form
// submitted to the frame or the tab; a JSON one is sent by the script (the CRM must allow it).
"use strict";

window.ConsoleCrm = (function () {
  const FRAME = "crm-frame";

  function Crm(api, elements, say, t) {
    this.api = api;
    this.el = elements;     // {panel, button, frame}
    this.say = say;
    this.t = t;
    this.config = null;
    const self = this;
    this.el.button.addEventListener("click", function () { self.open(); });
  }

  // Asked while the call rings, so that the answer (a click: the browser then lets the page
  // open a tab) can open it at once.
  Crm.prototype.reset = function () {
    this.config = null;
    this.el.button.hidden = true;
  };

  Crm.prototype.load = async function (callId) {
    this.reset();
    if (!callId) { return null; }
    const answer = await this.api.get("/api/v1/calls/" + encodeURIComponent(callId) + "/crm_interaction/");
    this.config = answer.status === 200 && answer.body && answer.body.url ? answer.body : null;
    return this.config;
  };

  // The call was answered: Automático opens, Agente offers its button.
  Crm.prototype.answered = function () {
    if (!this.config) { return; }
    this.el.panel.hidden = false;
    if (this.config.dispara_agente) {
      this.el.button.hidden = false;
    } else {
      this.open();
    }
  };

  Crm.prototype.open = function () {
    const c = this.config;
    if (!c) { return; }
    this.el.panel.hidden = false;
    const params = c.parametros || {};
    if (c.metodo === "POST" && c.formato_es_JSON) {
      this.sendJson(c.url, params);
      return;
    }
    if (c.abre_pestana) {
      // A blank tab first: null when the browser blocked it (no recent click), then the
      // button lets the agent open it; the CRM gets no handle on this page.
      const tab = window.open("", "crm-" + Date.now());
      if (!tab) {
        this.el.button.hidden = false;
        this.say(this.t("crm_blocked"), "error");
        return;
      }
      if (c.metodo === "GET") {
        tab.opener = null;
        tab.location.href = withQuery(c.url, params);
      } else {
        submitForm(c.url, c.formato, params, tab.name);   // the target is chosen at once…
        tab.opener = null;                                 // …so the tab can be cut off now
      }
      return;
    }
    this.el.frame.hidden = false;
    if (c.metodo === "GET") {
      this.el.frame.src = withQuery(c.url, params);
    } else {
      submitForm(c.url, c.formato, params, FRAME);
    }
  };

  Crm.prototype.sendJson = async function (url, params) {
    try {
      await fetch(url, { method: "POST", mode: "cors", credentials: "omit",
                         headers: { "Content-Type": "application/json" }, body: JSON.stringify(params) });
      this.say(this.t("crm_sent"), "ok");
    } catch (e) {
      this.say(this.t("crm_failed"), "error");
    }
  };

  function withQuery(url, params) {
    const query = new URLSearchParams(stringValues(params)).toString();
    return query ? url + (url.indexOf("?") >= 0 ? "&" : "?") + query : url;
  }

  function stringValues(params) {
    const out = {};
    Object.keys(params).forEach(function (k) {
      const v = params[k];
      out[k] = v === null || v === undefined ? "" : (typeof v === "object" ? JSON.stringify(v) : String(v));
    });
    return out;
  }

  function submitForm(url, enctype, params, target) {
    const form = document.createElement("form");
    form.method = "POST";
    form.action = url;
    form.enctype = enctype || "application/x-www-form-urlencoded";
    form.target = target;
    form.hidden = true;
    const values = stringValues(params);
    Object.keys(values).forEach(function (k) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = k;
      input.value = values[k];
      form.append(input);
    });
    document.body.append(form);
    form.submit();
    form.remove();
  }

  return Crm;
})();
