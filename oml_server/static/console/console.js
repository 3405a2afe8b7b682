// The agent console: the agent's session (the server's truth, polled), the phone, the call,
// the disposition after it, and click-to-call. Plain DOM, no framework.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("console-data").textContent);
  const t = function (key) { return data.messages[key] || key; };
  const $ = function (id) { return document.getElementById(id); };
  const api = new window.ConsoleApi(data.csrf);
  const POLL_MS = 2000;
  const AUTO_ANSWER_MS = 30000; // a makeCall of this page rings back within this time

  let agentState = null;
  let call = null;         // {id, number, campaign, contact, contactData, answered}
  let dialing = null;      // {callId, at}: the click-to-call placed from this page
  let phoneUp = false;

  function say(text, kind) {
    const el = $("message");
    el.textContent = text || "";
    el.dataset.kind = kind || "";
  }

  // -- the agent's session ---------------------------------------------------------------

  async function poll() {
    let answer;
    try {
      answer = await api.get("/api/v1/agent/state/");
    } catch (e) {
      showState(null);
      return;
    }
    if (answer.status === 403) { window.location.assign("/accounts/login/?next=/agente/"); return; }
    if (answer.body && answer.body.status === "OK") { showState(answer.body); }
  }

  function showState(state) {
    agentState = state;
    const badge = $("agent-status");
    if (!state) {
      badge.textContent = t("server_unreachable");
      badge.dataset.state = "UNKNOWN";
      return;
    }
    let text = t("state_" + state.state);
    if (state.state === "PAUSED" && state.pause_name) { text += ": " + state.pause_name; }
    if (state.state === "PAUSED" && state.acw_seconds_left !== null && state.acw_seconds_left !== undefined) {
      text += " " + t("acw_left").replace("{seconds}", state.acw_seconds_left);
    }
    badge.textContent = text;
    badge.dataset.state = state.state;
    $("btn-login").disabled = state.logged_in;
    $("btn-logout-session").disabled = !state.logged_in;
    $("btn-ready").disabled = !state.logged_in || !state.paused;
    $("btn-pause").disabled = !state.logged_in;
    if (call && state.call && state.call.id === call.id) { fillCall(state.call); }
  }

  async function session(action, fields, failure) {
    const answer = await api.post("/api/v1/asterisk_" + action + "/", fields);
    const ok = answer.body && answer.body.status === "OK";
    say(ok ? "" : t(failure), ok ? "" : "error");
    await poll();
    return ok;
  }

  $("btn-login").addEventListener("click", function () { session("login", {}, "login_failed"); });
  $("btn-logout-session").addEventListener("click", function () { session("logout", {}, "logout_failed"); });
  $("btn-ready").addEventListener("click", function () { session("ready", {}, "ready_failed"); });
  $("pause-form").addEventListener("submit", function (e) {
    e.preventDefault();
    session("pause", { pause_id: $("pause-select").value }, "pause_failed");
  });

  // -- the phone --------------------------------------------------------------------------

  function showPhone(up) {
    phoneUp = up;
    const el = $("phone-status");
    el.textContent = t(up ? "phone_registered" : "phone_unregistered");
    el.dataset.state = up ? "on" : "off";
  }

  const phone = new window.ConsolePhone(
    { wsUrl: data.sip.wsUrl, domain: data.sip.domain, extension: data.extension, name: data.name },
    $("remote-audio"),
    { registered: showPhone, incoming: incoming, answered: answered, ended: ended });

  const crm = new window.ConsoleCrm(api, { panel: $("crm-panel"), button: $("btn-crm"), frame: $("crm-frame") },
                                    say, t);

  async function startPhone() {
    if (!window.JsSIP) { // console/dist not built on this server (`make console`)
      say(t("no_phone_library"), "error");
      return;
    }
    const answer = await api.get("/api/v1/sip/credentials/agent/?webrtc=1");
    if (!answer.body || answer.body.status !== "OK") {
      say(t("no_credentials"), "error");
      return;
    }
    phone.start(answer.body.sip_user, answer.body.sip_password);
  }

  // -- a call -----------------------------------------------------------------------------

  async function incoming(info) {
    call = { id: info.callId || null, number: info.number, campaign: null, contact: null,
             contactData: {}, answered: false };
    $("disposition-panel").hidden = true;
    crm.reset();
    $("call-panel").hidden = false;
    $("call-state").textContent = t("ringing");
    $("call-number").textContent = info.number;
    $("btn-answer").hidden = false;
    api.post("/api/v1/asterisk_ringing/", { ringing: "true" }).then(poll);
    // The ring-back of this page's click-to-call is answered at once (it may come before
    // makeCall's answer: the call id is then learnt from the server).
    const mine = dialing && Date.now() - dialing.at < AUTO_ANSWER_MS &&
      (!call.id || !dialing.callId || call.id === dialing.callId);
    if (mine) {
      call.id = call.id || dialing.callId;
      dialing = null;
      answer();
    } else {
      $("btn-answer").focus();
    }
    const current = call;
    // The call's CRM site is asked for while it rings: ready when the agent answers.
    current.crm = describe(info).then(function () {
      return call === current && data.crm.campaigns.indexOf(call.campaign) >= 0 ? crm.load(call.id) : null;
    });
    await current.crm;
  }

  // What the call is: the API's record of it (named by the INVITE's header or by the
  // server's view of the agent's live call).
  async function describe(info) {
    const current = call;
    const state = (await api.get("/api/v1/agent/state/")).body;
    if (call !== current) { return; } // it ended meanwhile
    if (state && state.call && (!call.id || state.call.id === call.id)) {
      fillCall(state.call);
    } else if (call.id) {
      const record = (await api.get("/api/v1/calls/" + encodeURIComponent(call.id) + "/")).body;
      if (call !== current) { return; }
      if (record && record.id) { fillCall({ id: record.id, number: record.number, campaign: record.campaign,
                                            contact: record.contact, contactData: {} }); }
    }
    if (!call.campaign && info.campaign) { call.campaign = Number(info.campaign); }
  }

  function fillCall(summary) {
    if (!call) { return; }
    call.id = summary.id;
    call.number = summary.number || call.number;
    call.campaign = summary.campaign;
    call.campaignName = summary.campaignName || "";
    call.contact = summary.contact;
    call.contactData = summary.contactData || {};
    $("call-number").textContent = call.number;
    $("call-campaign").textContent = call.campaignName ? t("campaign") + ": " + call.campaignName : "";
    const list = $("call-contact");
    list.replaceChildren();
    Object.keys(call.contactData).forEach(function (column) {
      const dt = document.createElement("dt");
      dt.textContent = column;
      const dd = document.createElement("dd");
      dd.textContent = call.contactData[column];
      list.append(dt, dd);
    });
  }

  function answer() {
    phone.answer();
    $("btn-answer").hidden = true;
  }

  function answered() {
    if (!call) { return; }
    call.answered = true;
    say("");
    $("call-state").textContent = t("on_call");
    $("btn-answer").hidden = true;
    showControls(true);
    $("btn-hangup").focus();
    api.post("/api/v1/asterisk_ringing/", { ringing: "false" }).then(poll);
    const current = call;
    (current.crm || Promise.resolve()).then(function () { if (call === current) { crm.answered(); } });
  }

  // -- in-call control: hold and transfers (contract-calls §2, §3) -------------------------

  function showControls(on) {
    $("btn-hold").hidden = !on;
    $("transfer-form").hidden = !on;
    if (!on) {
      $("btn-hold").textContent = t("hold");
      $("btn-consult-complete").hidden = $("btn-consult-cancel").hidden = true;
    }
  }

  async function command(path, fields, failure) {
    if (!call || !call.id) { return null; }
    const answer = await api.post(path, Object.assign({ call_id: call.id }, fields));
    if (answer.status !== 202) {
      const why = answer.body && (answer.body.error || answer.body.detail);
      say(t(failure) + (why ? " " + why : ""), "error");
      return null;
    }
    say("");
    return answer.body;
  }

  $("btn-hold").addEventListener("click", async function () {
    const held = call && call.held;
    const done = await command("/api/v1/call/hold/", { action: held ? "unhold" : "hold" },
                               "hold_failed");
    if (!done || !call) { return; }
    call.held = !held;
    $("btn-hold").textContent = t(call.held ? "unhold" : "hold");
    $("call-state").textContent = t(call.held ? "on_hold" : "on_call");
  });

  // Whom to: a colleague chosen in the list (by agent id), else the extension or number typed.
  function transferTarget() {
    const agent = $("transfer-agent").value;
    if (agent) { return { target_agent_id: agent }; }
    const input = $("transfer-to");
    const endpoint = input.value.trim();
    if (!endpoint || !input.checkValidity()) {
      say(t("transfer_target_missing"), "error");
      input.focus();
      return null;
    }
    return { endpoint: endpoint };
  }

  $("transfer-agent").addEventListener("change", function () {
    $("transfer-to").hidden = Boolean($("transfer-agent").value);
  });

  $("transfer-form").addEventListener("submit", async function (e) {
    e.preventDefault();
    const target = transferTarget();
    if (!target) { return; }
    const path = target.target_agent_id ? "/api/v1/transfer/blind-agent/" : "/api/v1/transfer/blind-endpoint/";
    const done = await command(path, target, "transfer_failed");
    if (done) { say(t("transferred"), ""); }
  });

  $("btn-consult").addEventListener("click", async function () {
    const target = transferTarget();
    if (!target) { return; }
    const done = await command("/api/v1/agent/transfer/consult/start/", target, "transfer_failed");
    if (!done) { return; }
    $("btn-consult-cancel").hidden = false;
    $("call-state").textContent = t("consulting");
    followConsult(call);
  });

  // Complete is offered once the consulted party answered (the server refuses it before): the
  // call's latest consult event, from its record, every second while the consult lasts.
  const CONSULT_EVENTS = ["call.consult_started", "call.consult_answered", "call.consult_completed",
                          "call.consult_cancelled", "call.consult_failed"];

  async function followConsult(current) {
    while (call === current && !$("btn-consult-cancel").hidden) {
      const record = (await api.get("/api/v1/calls/" + encodeURIComponent(current.id) + "/")).body;
      const events = (record && record.events ? record.events : []).filter(function (e) {
        return CONSULT_EVENTS.indexOf(e.type) >= 0;
      });
      const latest = events.length ? events[events.length - 1].type : "";
      if (call !== current) { return; }
      if (latest === "call.consult_answered") {
        $("btn-consult-complete").hidden = false;
        $("call-state").textContent = t("consult_answered");
        return;
      }
      if (latest && latest !== "call.consult_started") {   // not answered, or hung up
        $("btn-consult-cancel").hidden = true;
        $("call-state").textContent = t("on_call");
        say(t("consult_ended"), "error");
        return;
      }
      await new Promise(function (resolve) { window.setTimeout(resolve, 1000); });
    }
  }

  $("btn-consult-complete").addEventListener("click", async function () {
    if (await command("/api/v1/agent/transfer/consult/complete/", {}, "transfer_failed")) {
      say(t("transferred"), "");
    }
  });

  $("btn-consult-cancel").addEventListener("click", async function () {
    if (await command("/api/v1/agent/transfer/consult/cancel/", {}, "transfer_failed")) {
      $("btn-consult-complete").hidden = $("btn-consult-cancel").hidden = true;
      $("call-state").textContent = t("on_call");
    }
  });

  function ended() {
    const finished = call;
    call = null;
    showControls(false);
    $("call-panel").hidden = true;
    window.setTimeout(poll, 300); // the engine records the end within moments
    if (!finished) { return; }
    if (!finished.answered) {
      api.post("/api/v1/asterisk_ringing/", { ringing: "false" });
      say(t("call_missed"), "");
      return;
    }
    offerDisposition(finished);
  }

  $("btn-answer").addEventListener("click", answer);
  $("btn-hangup").addEventListener("click", function () {
    if (call && !call.answered) { api.post("/api/v1/asterisk_reject_call/", {}); }
    phone.hangup();
  });

  // -- after the call: its disposition ----------------------------------------------------

  let disposing = null;

  async function offerDisposition(finished) {
    if (!finished.campaign) { return; }
    const answer = await api.get("/api/v1/campaign/" + finished.campaign + "/dispositionOptions/");
    const options = (Array.isArray(answer.body) ? answer.body : []).filter(function (o) { return !o.hidden; });
    if (!options.length) { return; }
    disposing = finished;
    const select = $("disposition-option");
    select.replaceChildren();
    options.forEach(function (o) {
      const option = document.createElement("option");
      option.value = o.id;
      option.textContent = o.name;
      select.append(option);
    });
    $("disposition-comments").value = "";
    $("disposition-call").textContent = finished.number;
    $("disposition-panel").hidden = false;
    select.focus();
  }

  $("disposition-form").addEventListener("submit", async function (e) {
    e.preventDefault();
    if (!disposing) { return; }
    const fields = { idDispositionOption: $("disposition-option").value,
                     comments: $("disposition-comments").value, callid: disposing.id || "" };
    let answer;
    if (disposing.contact) {
      fields.idContact = disposing.contact;
      answer = await api.post("/api/v1/disposition/", fields);
    } else { // no contact yet: OMniLeads' way is a new contact with its disposition
      fields.phone = disposing.number;
      answer = await api.post("/api/v1/new_contact/disposition/", fields);
    }
    if (answer.status === 201) {
      disposing = null;
      $("disposition-panel").hidden = true;
      say(t("disposition_saved"), "ok");
      contacts.load();
      poll();   // after-call work, when the campaign has it, shows at once
    } else {
      const body = answer.body || {};
      say(t("disposition_failed") + " " + (body.msg || body.idContact || body.idDispositionOption ||
                                           body.contacto || body.idExternalContact || ""), "error");
    }
  });

  // -- click-to-call ----------------------------------------------------------------------

  async function placeCall(campaign, number, contactId) {
    if (!phoneUp) { say(t("phone_unregistered"), "error"); return; }
    dialing = { callId: null, at: Date.now() };
    const pending = dialing;
    const fields = { idCampaign: campaign, idAgent: data.agentId, phone: number };
    if (contactId) { fields.idContact = contactId; }
    const answer = await api.post("/api/v1/makeCall/", fields);
    const body = answer.body || {};
    if (body.status === "OK") {
      pending.callId = body.callId;
      say(t("dialing"), "");
    } else {
      if (dialing === pending) { dialing = null; }
      const errors = body.errors ? (Array.isArray(body.errors) ? body.errors : Object.values(body.errors).flat()) : [];
      say((body.message || t("call_failed")) + (errors.length ? ": " + errors.join(" ") : ""), "error");
    }
  }

  $("dial-form").addEventListener("submit", function (e) {
    e.preventDefault();
    placeCall($("dial-campaign").value, $("dial-number").value.trim(), null);
  });

  const contacts = new window.ConsoleContacts(api, {
    form: $("contacts-form"), campaign: $("contacts-campaign"), search: $("contacts-search"),
    body: $("contacts-body"), status: $("contacts-status"), prev: $("contacts-prev"), next: $("contacts-next"),
  }, t, placeCall);
  $("contacts-campaign").addEventListener("change", function () { contacts.start = 0; contacts.load(); });

  window.addEventListener("beforeunload", function () { phone.stop(); });

  // -- presence heartbeat (contract-calls §5): an agent whose consoles all stop beating is not
  // offered new calls. The server says when to beat next.
  const consoleIds = {
    browser: (function () {
      try {
        let id = window.localStorage.getItem("oml-browser-id");
        if (!id) { id = "b-" + Math.random().toString(36).slice(2, 14); window.localStorage.setItem("oml-browser-id", id); }
        return id;
      } catch (e) { return "b-" + Math.random().toString(36).slice(2, 14); }
    })(),
    tab: "t-" + Math.random().toString(36).slice(2, 14),
  };

  async function heartbeat() {
    let next = 20;
    try {
      const answer = await api.post("/api/v1/agent/presence/heartbeat/", {
        browser_id: consoleIds.browser, tab_id: consoleIds.tab,
        ui_state: call ? "on_call" : "idle", sent_at_ms: String(Date.now()),
      });
      if (answer.body && answer.body.next_heartbeat_sec) { next = answer.body.next_heartbeat_sec; }
    } catch (e) { /* the state poll already says the server is unreachable */ }
    window.setTimeout(heartbeat, Math.max(5, next) * 1000);
  }

  showPhone(false);
  contacts.load();
  poll();
  window.setInterval(poll, POLL_MS);
  heartbeat();
  startPhone();
})();
