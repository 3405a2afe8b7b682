// The server's REST API as OMniLeads' own console calls it: the session cookie, the CSRF token
// copied from its cookie into a header, form-encoded bodies.
"use strict";

window.ConsoleApi = (function () {
  function cookie(name) {
    const prefix = name + "=";
    const found = document.cookie.split("; ").find((c) => c.startsWith(prefix));
    return found ? decodeURIComponent(found.slice(prefix.length)) : "";
  }

  function Api(csrf) {
    this.csrf = csrf;
  }

  Api.prototype.request = async function (method, path, fields) {
    const headers = { "X-Requested-With": "XMLHttpRequest", "Accept": "application/json" };
    const init = { method: method, headers: headers, credentials: "same-origin" };
    if (method !== "GET") {
      headers[this.csrf.header] = cookie(this.csrf.cookie);
      headers["Content-Type"] = "application/x-www-form-urlencoded";
      init.body = new URLSearchParams(fields || {}).toString();
    }
    const response = await fetch(path, init);
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    return { status: response.status, body: body };
  };

  Api.prototype.get = function (path) { return this.request("GET", path); };
  Api.prototype.post = function (path, fields) { return this.request("POST", path, fields); };

  return Api;
})();
