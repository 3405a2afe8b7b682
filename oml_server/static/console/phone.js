// The agent's phone: JsSIP registered to Asterisk over WebSocket with the ephemeral credentials
// from /api/v1/sip/credentials/agent/?webrtc=1 (digest user "<expiry>:<ext>", URI user "<ext>").
"use strict";

window.ConsolePhone = (function () {
  // SIP headers that carry the call's data (docs: contract-calls.md §1), newest names first.
  const HEADERS = {
    callId: ["X-OML-CallID", "Omlcallid"],
    campaign: ["X-OML-CampID", "Idcamp"],
    contact: ["X-OML-CustomerID", "Idcliente"],
    number: ["X-OML-PhoneNumber", "Omloutnum"],
  };

  function headerValues(request) {
    const found = {};
    Object.keys(HEADERS).forEach(function (key) {
      for (const name of HEADERS[key]) {
        const value = request.hasHeader(name) ? request.getHeader(name) : "";
        if (value) { found[key] = value; break; }
      }
    });
    return found;
  }

  function Phone(config, audio, handlers) {
    this.config = config;
    this.audio = audio;
    this.on = handlers; // registered(bool), incoming(info), answered(), ended(cause)
    this.ua = null;
    this.session = null;
  }

  Phone.prototype.start = function (sipUser, sipPassword) {
    if (window.JsSIP.debug) { window.JsSIP.debug.disable(); }
    const socket = new window.JsSIP.WebSocketInterface(this.config.wsUrl);
    this.ua = new window.JsSIP.UA({
      sockets: [socket],
      uri: "sip:" + this.config.extension + "@" + this.config.domain,
      authorization_user: sipUser,
      password: sipPassword,
      display_name: this.config.name,
      register: true,
      register_expires: 300,
      session_timers: false,
      user_agent: "oml-server agent console",
    });
    const self = this;
    this.ua.on("registered", function () { self.on.registered(true); });
    this.ua.on("unregistered", function () { self.on.registered(false); });
    this.ua.on("registrationFailed", function () { self.on.registered(false); });
    this.ua.on("disconnected", function () { self.on.registered(false); });
    this.ua.on("newRTCSession", function (event) {
      if (event.originator !== "remote") { return; }
      if (self.session) { // one call at a time: a second one is refused as busy
        event.session.terminate({ status_code: 486 });
        return;
      }
      self.attach(event.session, event.request);
    });
    this.ua.start();
  };

  Phone.prototype.attach = function (session, request) {
    const self = this;
    this.session = session;
    session.on("peerconnection", function (e) { self.playRemote(e.peerconnection); });
    session.on("confirmed", function () { self.on.answered(); });
    const done = function (e) {
      if (self.session !== session) { return; }
      self.session = null;
      self.audio.srcObject = null;
      self.on.ended(e && e.cause);
    };
    session.on("ended", done);
    session.on("failed", done);
    const identity = session.remote_identity;
    this.on.incoming(Object.assign({
      number: identity && identity.uri ? identity.uri.user : "",
      displayName: identity ? identity.display_name : "",
    }, headerValues(request)));
  };

  Phone.prototype.playRemote = function (pc) {
    const audio = this.audio;
    pc.addEventListener("track", function (e) {
      audio.srcObject = e.streams[0];
      // Autoplay may be refused before the agent touched the page: the call still works.
      const playing = audio.play();
      if (playing) { playing.catch(function () {}); }
    });
  };

  Phone.prototype.answer = function () {
    if (!this.session) { return; }
    this.session.answer({ mediaConstraints: { audio: true, video: false },
                          pcConfig: { iceServers: [] } });
  };

  Phone.prototype.hangup = function () {
    if (this.session) { this.session.terminate(); }
  };

  Phone.prototype.stop = function () {
    if (this.ua) { this.ua.stop(); }
  };

  return Phone;
})();
