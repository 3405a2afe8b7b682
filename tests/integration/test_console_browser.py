"""The agent console (/agente/) in a real browser against the real server and lab Asterisk.

Two agents log in through the web form in two browser contexts (fake microphones), their
JsSIP phones register over WebSocket; an inbound caller from the SIPp "PSTN" rings the idlest
one with the contact's data, it answers, audio flows both ways (RTP counters of the agent's
channel in Asterisk), it dispositions the call and pauses; the status follows a change made
elsewhere; the other agent clicks-to-call a number that SIPp answers. One screenshot per
screen goes to tests/artifacts/console/. Any console error of a page fails the test.

Debian's chromium (`apt-get install chromium`; `make test-deps` does it as root) driven by the
`playwright` package: never a downloaded browser. Skipped when chromium or the lab is absent.

Run: ``.venv/bin/python -m pytest -m integration tests/integration/test_console_browser.py -v``
"""
from __future__ import annotations

import os
import re
import shutil

import pytest

from conftest import CONSOLE_AGENTS, CRM_CALLER, INBOUND_WAIT_SECONDS, KNOWN_CALLER, PASSWORD
from lab import REPO, SippPeer, wait_until
from test_engine_calls import assert_nothing_left, caller as inbound_caller, caller_result

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("OML_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--allow-loopback-in-peer-connection", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required"]
ARTIFACTS = os.path.join(REPO, "tests", "artifacts", "console")
UI_WAIT_MS = 8000


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (as root: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")
    os.makedirs(ARTIFACTS, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


PEER_CONNECTIONS_SCRIPT = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__peerConnections = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__peerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
"""

BROWSER_RTP = """async () => {
  const pc = window.__peerConnections[window.__peerConnections.length - 1];
  let received = 0, sent = 0;
  (await pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "audio") { received += r.packetsReceived; }
    if (r.type === "outbound-rtp" && r.kind === "audio") { sent += r.packetsSent; }
  });
  return [received, sent];
}"""


class ConsolePage:
    """One agent's console in its own browser context, with its console errors recorded."""

    def __init__(self, browser, server, username, locale):
        self.username = username
        self.context = browser.new_context(locale=locale, viewport={"width": 1366, "height": 768})
        # Keeps the page's peer connections reachable, to read the browser's own RTP counters.
        self.context.add_init_script(PEER_CONNECTIONS_SCRIPT)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("response", lambda r: self.errors.append(f"HTTP {r.status} {r.url}")
                     if r.status >= 400 else None)
        self.page.goto(server.url + "/accounts/login/?next=/agente/")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.press("input[name=password]", "Enter")  # the form is keyboard-usable
        self.page.wait_for_url("**/agente/")

    def wait_state(self, selector, state):
        self.page.wait_for_selector(f'{selector}[data-state="{state}"]', timeout=UI_WAIT_MS)

    def text(self, selector):
        return self.page.inner_text(selector)

    def stop_working(self):
        self.page.click("#btn-logout-session")
        self.wait_state("#agent-status", "LOGGED_OUT")

    def shot(self, name):
        self.page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"))

    def close(self):
        self.context.close()


def close_all(pages, peers=()):
    for peer in peers:
        peer.stop()
    for console in pages.values():
        console.close()


def caller_with_number(lab, campaign_id, number, log_dir):
    """A SIPp caller from the trunk whose number travels in P-Asserted-Identity."""
    text = open(os.path.join(REPO, "tests", "integration", "sipp", "caller_uac.xml"),
                encoding="latin-1").read()
    text = text.replace("Max-Forwards: 70\n",
                        f"Max-Forwards: 70\nP-Asserted-Identity: <sip:{number}@[local_ip]>\n", 1)
    scenario = os.path.join(log_dir, "caller_pai.xml")
    with open(scenario, "w", encoding="latin-1") as f:
        f.write(text)
    return SippPeer(scenario, remote=f"127.0.0.1:{lab.sip_port}", log_dir=log_dir,
                    extra_args=["-s", str(campaign_id), "-m", "1", "-timeout", "30s",
                                "-timeout_error"]).start(settle=0)


def rtp_counts(lab, ext):
    """(packets received, packets sent) by Asterisk on the agent's channel, from `pjsip show
    channelstats` (columns: channel, uptime, codec, rx count, lost, pct, jitter, tx count…)."""
    output = lab.cli("pjsip show channelstats")
    for line in output.splitlines():
        tokens = line.split()
        for i, token in enumerate(tokens):
            if token.startswith(f"{ext}-") and len(tokens) > i + 7:
                return int(tokens[i + 3]), int(tokens[i + 7])
    raise AssertionError(f"no RTP statistics for {ext}:\n{output}")


def tab_order(page, presses=12):
    """Ids of the controls the Tab key visits after the header's link, until it wraps."""
    page.focus("a.logout")
    seen = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement && document.activeElement.id")
        if not focused or focused in seen:
            break
        seen.append(focused)
    return seen


def api_get(server, username, path):
    return server.get(path, server.token(username))


def heartbeat_of(database_url, agent_id):
    import sqlite3
    with sqlite3.connect(database_url[len("sqlite:///"):], timeout=5) as conn:
        row = conn.execute("SELECT heartbeat_at FROM agent_sessions WHERE agent_id = ?",
                           (agent_id,)).fetchone()
    return row[0] if row else None


def test_two_agents_take_an_inbound_call_disposition_it_pause_and_click_to_call(
        browser, server, lab, world, workdir, database_url):
    first, second = CONSOLE_AGENTS
    ext = {name: world.agents[name]["ext"] for name in CONSOLE_AGENTS}
    campaign = world.campaigns["console"]
    pages = {first: ConsolePage(browser, server, first, "es-AR"),
             second: ConsolePage(browser, server, second, "en-US")}
    peers = []
    try:
        # Both phones register over WebSocket, as WebRTC endpoints.
        for name, console in pages.items():
            console.wait_state("#phone-status", "on")
            lab.wait_endpoint_state(ext[name], "online", 5)
        assert pages[first].text("h1") == "Consola de agente"  # es from the browser's language
        assert pages[second].text("h1") == "Agent console"
        # Every control is reachable with the Tab key, in reading order.
        # (Not logged in yet: stop-working, ready and pause are disabled, so skipped.)
        # (The contacts list's Call buttons come next: tab_order stops at them, they have no id.)
        assert tab_order(pages[second].page) == [
            "btn-login", "pause-select", "dial-campaign", "dial-number", "btn-dial",
            "contacts-campaign", "contacts-search", "btn-contacts"]
        # Log in (first one first: it is then the idlest when the call comes), by keyboard.
        for name in (first, second):
            pages[name].page.focus("#btn-login")
            pages[name].page.keyboard.press("Enter")
            pages[name].wait_state("#agent-status", "READY")
        pages[first].shot("01-ready")
        # Each page beats the presence heartbeat (consoles that stop are not offered calls).
        for name in (first, second):
            wait_until(lambda: heartbeat_of(database_url, world.agents[name]["agent_id"]),
                       5, f"{name}'s console heartbeat")

        # An inbound caller the database knows rings the idlest agent, with its data.
        log_dir = os.path.join(workdir, "console-caller")
        os.makedirs(log_dir, exist_ok=True)
        caller = caller_with_number(lab, campaign, KNOWN_CALLER["TELEFONO"], log_dir)
        peers.append(caller)
        ringing = pages[first].page
        ringing.wait_for_selector("#call-panel:not([hidden]) #btn-answer:not([hidden])",
                                  timeout=UI_WAIT_MS)
        ringing.wait_for_selector(f'#call-contact dd:text-is("{KNOWN_CALLER["NOMBRE"]}")',
                                  timeout=UI_WAIT_MS)
        assert pages[first].text("#call-number") == KNOWN_CALLER["TELEFONO"]
        assert pages[second].page.is_hidden("#call-panel")
        pages[first].shot("02-ringing")
        ringing.click("#btn-answer")
        wait_until(lambda: any(len(b["channels"]) == 2 for b in lab.ari.bridges()), 8,
                   "caller bridged with the browser agent")
        # Audio both ways (measured first: the caller's recording lasts 4.7 s): Asterisk
        # receives the browser's (fake) microphone and sends it the caller's audio, packets
        # counted on the agent's channel over one second.
        before = rtp_counts(lab, ext[first])
        ringing.wait_for_timeout(1000)
        after = rtp_counts(lab, ext[first])
        assert after[0] - before[0] >= 20, (before, after)  # 50 packets/s at 20 ms
        assert after[1] - before[1] >= 20, (before, after)
        # …and the browser's own counters agree: it receives and sends audio packets.
        received, sent = ringing.evaluate(BROWSER_RTP)
        assert received >= 20 and sent >= 20, (received, sent)
        print(f"RTP over 1 s on the agent's channel: Asterisk received {after[0] - before[0]}, "
              f"sent {after[1] - before[1]}; browser totals: received {received}, sent {sent}")
        pages[first].wait_state("#agent-status", "ONCALL")
        bridged = {lab.ari.channel(c)["name"].split("-")[0]
                   for b in lab.ari.bridges() for c in b["channels"]}
        assert f"PJSIP/{ext[first]}" in bridged
        call_id = api_get(server, first, "/api/v1/agent/state/")["call"]["id"]
        pages[first].shot("03-on-call")

        # Hold from the page: the caller moves to the call's holding bridge (music on hold),
        # the agent's leg stays; then back together.
        ringing.click("#btn-hold")
        wait_until(lambda: any(b["id"].endswith("-hold") and len(b["channels"]) == 1
                               for b in lab.ari.bridges()), 5, "caller on hold")
        ringing.wait_for_selector('#btn-hold:text-is("Retomar")', timeout=UI_WAIT_MS)
        pages[first].shot("03b-on-hold")
        ringing.click("#btn-hold")
        wait_until(lambda: any(len(b["channels"]) == 2 for b in lab.ari.bridges()), 5,
                   "caller back with the agent")
        ringing.wait_for_selector('#btn-hold:text-is("Espera")', timeout=UI_WAIT_MS)

        # Hang up, then the disposition form offers the visible options only.
        ringing.click("#btn-hangup")
        ringing.wait_for_selector("#disposition-panel:not([hidden])", timeout=UI_WAIT_MS)
        offered = ringing.eval_on_selector_all("#disposition-option option", "os => os.map(o => o.textContent)")
        assert offered == ["Venta", "No interesado"]
        ringing.select_option("#disposition-option", label="Venta")
        ringing.fill("#disposition-comments", "Quiere el plan anual")
        pages[first].shot("04-disposition")
        ringing.click("#btn-dispose")
        ringing.wait_for_selector('#message[data-kind="ok"]', timeout=UI_WAIT_MS)
        saved = api_get(server, first, "/api/v1/disposition/")
        assert [(d["callid"], d["comments"]) for d in saved] == [(call_id, "Quiere el plan anual")]
        wait_until(lambda: not caller.alive(), 5, "caller got BYE")

        # Pause with one of the site's pauses; the status then follows a change made elsewhere.
        ringing.select_option("#pause-select", label="Break")
        ringing.click("#btn-pause")
        pages[first].wait_state("#agent-status", "PAUSED")
        assert "Break" in pages[first].text("#agent-status")
        pages[first].shot("05-paused")
        server.post("/api/v1/asterisk_pause/", server.token(first), {"pause_id": "00"})
        ringing.wait_for_selector('#agent-status:has-text("Supervision")', timeout=UI_WAIT_MS)

        # Click-to-call from the other page: its phone rings back, answers, SIPp answers.
        dialer = pages[second].page
        dialer.select_option("#dial-campaign", value=str(campaign))
        dialer.fill("#dial-number", "5552000")
        dialer.press("#dial-number", "Enter")
        pages[second].wait_state("#agent-status", "ONCALL")
        wait_until(lambda: any(len(b["channels"]) == 2 for b in lab.ari.bridges()), 10,
                   "browser agent bridged with the SIPp contact")
        names = {lab.ari.channel(c)["name"].split("-")[0]
                 for b in lab.ari.bridges() for c in b["channels"]}
        assert names == {f"PJSIP/{ext[second]}", "PJSIP/trunk"}, names
        pages[second].shot("06-click-to-call")
        dialer.click("#btn-hangup")
        dialer.wait_for_selector("#disposition-panel:not([hidden])", timeout=UI_WAIT_MS)
        wait_until(lambda: not lab.ari.bridges() and not lab.ari.channels(), 5, "call cleaned up")

        for name, console in pages.items():
            console.stop_working()
            assert console.errors == [], (name, console.errors)
    finally:
        close_all(pages, peers)


# -- the CRM pop, transfers, after-call work and the contacts list ----------------------------

CRM_PARAMETERS = [{"name": "call", "type": "call", "value": "call_id"},
                  {"name": "agent", "type": "call", "value": "agent_username"},
                  {"name": "phone", "type": "call", "value": "telefono"},
                  {"name": "nombre", "type": "contact", "value": "NOMBRE"},
                  {"name": "source", "type": "fixed", "value": "oml"}]


class ConsoleCampaign:
    """Writes the console campaign's CRM site and after-call work into the server's database
    (as provisioning would), and puts it back as it was."""

    def __init__(self, database_url, campaign_id):
        from oml_server import create_app, secrets_file
        self.app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "ARI_ENABLED": False,
                               "TESTING": True, **secrets_file.generate()})
        self.campaign_id = campaign_id

    def set(self, site=None, acw_seconds=0):
        from oml_server.extensions import db
        from oml_server.models import Campaign, ExternalSite
        with self.app.app_context():
            campaign = db.session.get(Campaign, self.campaign_id)
            campaign.external_site_id, campaign.crm_parameters = None, []
            campaign.acw_seconds = acw_seconds
            db.session.execute(db.delete(ExternalSite).where(ExternalSite.nombre.like("console-%")))
            if site is not None:
                row = ExternalSite(nombre=f"console-{site['url'].rsplit('/', 1)[-1]}", **site)
                db.session.add(row)
                db.session.flush()
                campaign.external_site_id, campaign.crm_parameters = row.id, CRM_PARAMETERS
            db.session.commit()


@pytest.fixture
def crm(server, world, database_url):
    from tests.stub_crm import StubCrm
    stub = StubCrm().up()
    stub.campaign = ConsoleCampaign(database_url, world.campaigns["console"])
    yield stub
    stub.campaign.set()
    stub.down()
    for name in CONSOLE_AGENTS:   # a failed test leaves no agent working for the next
        server.post("/api/v1/asterisk_logout/", server.token(name))


def logged_in_pages(browser, server, lab, world, names):
    """Consoles of `names` (in that order: the first is then the idlest), phones registered,
    working (READY)."""
    pages = {}
    for name in names:
        pages[name] = ConsolePage(browser, server, name, "es-AR" if name == "wanda" else "en-US")
    for name, console in pages.items():
        console.wait_state("#phone-status", "on")
        lab.wait_endpoint_state(world.agents[name]["ext"], "online", 5)
        console.page.click("#btn-login")
        console.wait_state("#agent-status", "READY")
    return pages


def bridged_with(lab, ext):
    """True when a bridge holds exactly the agent's channel and the trunk's."""
    from ari_engine.ari_client import AriNotFound
    for bridge in lab.ari.bridges():
        try:
            names = {lab.ari.channel(c)["name"].split("-")[0] for c in bridge["channels"]}
        except AriNotFound:   # a channel left meanwhile (a transfer under way)
            continue
        if names == {f"PJSIP/{ext}", "PJSIP/trunk"}:
            return True
    return False


def rings(console):
    console.page.wait_for_selector("#call-panel:not([hidden]) #btn-answer:not([hidden])",
                                   timeout=UI_WAIT_MS)


def test_crm_pop_and_blind_and_consultative_transfers_between_two_consoles(
        browser, server, lab, world, workdir, crm):
    """Automático, embedded, GET: the page frames the CRM with the call's parameters when the
    agent answers. Then a blind transfer to the other console's agent, and back with a
    consultative one (start, the target answers, complete), all from the pages."""
    first, second = CONSOLE_AGENTS
    ext = {name: world.agents[name]["ext"] for name in CONSOLE_AGENTS}
    crm.campaign.set(site={"url": crm.url + "/pop", "disparador": 2, "metodo": 1, "objetivo": 1},
                     acw_seconds=60)
    pages = logged_in_pages(browser, server, lab, world, (first, second))
    peers = []
    try:
        log_dir = os.path.join(workdir, "console-crm-caller")
        os.makedirs(log_dir, exist_ok=True)
        caller = caller_with_number(lab, world.campaigns["console"], CRM_CALLER["TELEFONO"], log_dir)
        peers.append(caller)
        rings(pages[first])
        pages[first].page.click("#btn-answer")
        wait_until(lambda: bridged_with(lab, ext[first]), 8, "caller bridged with the first agent")
        call_id = api_get(server, first, "/api/v1/agent/state/")["call"]["id"]
        # Automático: on answer, the CRM opens in the page's frame with the call's parameters.
        pop = crm.wait_for("/pop", 1, timeout=8)[0]
        assert pop.method == "GET"
        assert pop.query == {"call": call_id, "agent": first, "phone": CRM_CALLER["TELEFONO"],
                             "nombre": CRM_CALLER["NOMBRE"], "source": "oml"}, pop.query
        pages[first].page.wait_for_selector("#crm-panel:not([hidden]) #crm-frame:not([hidden])",
                                            timeout=UI_WAIT_MS)
        assert pages[first].page.get_attribute("#crm-frame", "src").startswith(crm.url + "/pop?")
        pages[first].wait_state("#agent-status", "ONCALL")
        pages[first].shot("07-crm-embedded")

        # Blind transfer to the other agent, chosen by name: its page rings, it answers, the
        # caller is with it; the first page then offers the disposition.
        pages[first].page.select_option("#transfer-agent", label=second.title())
        assert pages[first].page.is_hidden("#transfer-to")
        pages[first].shot("08-transfer-to-agent")
        pages[first].page.click("#btn-transfer")
        rings(pages[second])
        pages[second].page.click("#btn-answer")
        wait_until(lambda: bridged_with(lab, ext[second]), 8, "caller bridged with the second agent")
        pages[first].page.wait_for_selector("#disposition-panel:not([hidden])", timeout=UI_WAIT_MS)
        # The CRM opens on the new agent's page too, with that agent's name.
        second_pop = crm.wait_for("/pop", 2, timeout=8)[1]
        assert (second_pop.query["call"], second_pop.query["agent"]) == (call_id, second)
        pages[second].wait_state("#agent-status", "ONCALL")
        pages[second].shot("09-transferred")

        # Consultative, back to the first agent: the caller waits on hold while they talk.
        pages[second].page.select_option("#transfer-agent", label=first.title())
        pages[second].page.click("#btn-consult")
        rings(pages[first])
        pages[first].page.click("#btn-answer")
        wait_until(lambda: any(b["id"] == f"oml-{call_id}" and len(b["channels"]) == 1
                               for b in lab.ari.bridges()), 8, "caller waits during the consult")
        # Complete is offered once the consulted agent has answered (refused before that).
        pages[second].page.wait_for_selector("#btn-consult-complete:not([hidden])", timeout=UI_WAIT_MS)
        pages[second].shot("10-consulting")
        pages[second].page.click("#btn-consult-complete")
        wait_until(lambda: bridged_with(lab, ext[first]), 8, "caller bridged with the first agent again")
        pages[second].page.wait_for_selector("#disposition-panel:not([hidden])", timeout=UI_WAIT_MS)
        pages[first].wait_state("#agent-status", "ONCALL")
        pages[first].page.click("#btn-hangup")
        wait_until(lambda: not caller.alive(), 8, "caller got BYE")
        pages[first].page.wait_for_selector("#disposition-panel:not([hidden])", timeout=UI_WAIT_MS)
        kinds = [e["type"] for e in api_get(server, first, f"/api/v1/calls/{call_id}/")["events"]]
        assert kinds.count("call.transferred") == 2, kinds

        # After-call work (the campaign's 60 s here): once the disposition is saved the first
        # agent is in ACW, and an inbound call meanwhile is not offered to it (the other agent
        # has stopped working: the caller finds nobody). Then it ends the ACW early: Ready.
        pages[second].stop_working()
        pages[first].page.select_option("#disposition-option", label="Venta")
        pages[first].page.click("#btn-dispose")
        pages[first].page.wait_for_selector('#agent-status[data-state="PAUSED"]:has-text("ACW")',
                                            timeout=UI_WAIT_MS)
        refused_dir = os.path.join(workdir, "console-acw-caller")
        os.makedirs(refused_dir, exist_ok=True)
        refused = inbound_caller(lab, world.campaigns["console"], refused_dir)
        peers.append(refused)
        wait_until(lambda: not refused.alive(), INBOUND_WAIT_SECONDS + 8, "caller turned away")
        assert "RESULT refused" in caller_result(refused), caller_result(refused)
        assert api_get(server, first, "/api/v1/agent/state/")["pause_id"] == "0"
        pages[first].page.click("#btn-ready")
        pages[first].wait_state("#agent-status", "READY")

        pages[first].stop_working()
        for name, console in pages.items():
            assert console.errors == [], (name, console.errors)
        # Nothing of the call left in Asterisk: its consult bridge too (it stayed listed, out
        # of every application's reach, in about one run in ten: ari_engine/call_bridges.py).
        assert_nothing_left(lab)
    finally:
        close_all(pages, peers)


def test_contact_list_click_to_call_crm_button_and_after_call_work(
        browser, server, lab, world, crm):
    """The agent calls a contact from the campaign's list with one click (it bridges to the
    SIPp contact); the campaign's Agente site is a button that opens a new tab POSTing the
    call's parameters; after the disposition the agent is in after-call work for the
    campaign's 3 s (shown, and true on the server), then ready by itself."""
    from conftest import CONTACT_TO_CALL
    name = CONSOLE_AGENTS[1]
    ext = world.agents[name]["ext"]
    crm.campaign.set(site={"url": crm.url + "/tab", "disparador": 1, "metodo": 2, "formato": 2,
                           "objetivo": 2}, acw_seconds=3)
    pages = logged_in_pages(browser, server, lab, world, (name,))
    console = pages[name]
    page = console.page
    try:
        page.select_option("#contacts-campaign", value=str(world.campaigns["console"]))
        row = page.locator(f'#contacts-body tr:has(td:text-is("{CONTACT_TO_CALL["TELEFONO"]}"))')
        row.wait_for(timeout=UI_WAIT_MS)
        assert CONTACT_TO_CALL["NOMBRE"] in row.inner_text()
        console.shot("11-contacts")
        row.get_by_role("button").click()
        console.wait_state("#agent-status", "ONCALL")
        wait_until(lambda: bridged_with(lab, ext), 10, "agent bridged with the SIPp contact")
        call = api_get(server, name, "/api/v1/agent/state/")["call"]
        assert call["number"] == CONTACT_TO_CALL["TELEFONO"] and call["contactData"] == CONTACT_TO_CALL

        # Agente: a button; pressed, a new tab POSTs the parameters (form-encoded) to the CRM.
        page.wait_for_selector("#crm-panel:not([hidden]) #btn-crm:not([hidden])", timeout=UI_WAIT_MS)
        assert crm.requests_to("/tab") == []
        console.shot("12-crm-button")
        with console.context.expect_page() as opened:
            page.click("#btn-crm")
        post = crm.wait_for("/tab", 1, timeout=8)[0]
        assert post.method == "POST"
        assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
        from urllib.parse import parse_qs
        assert {k: v[0] for k, v in parse_qs(post.body.decode(), keep_blank_values=True).items()} == {
            "call": call["id"], "agent": name, "phone": CONTACT_TO_CALL["TELEFONO"],
            "nombre": CONTACT_TO_CALL["NOMBRE"], "source": "oml"}
        tab = opened.value
        tab.wait_for_url(crm.url + "/tab", timeout=UI_WAIT_MS)
        assert tab.evaluate("() => window.opener") is None   # cut off from the console
        tab.close()

        page.click("#btn-hangup")
        page.wait_for_selector("#disposition-panel:not([hidden])", timeout=UI_WAIT_MS)
        page.select_option("#disposition-option", label="Venta")
        page.click("#btn-dispose")
        # After-call work: the badge says so with the time left, and the server agrees.
        page.wait_for_selector('#agent-status[data-state="PAUSED"]:has-text("ACW")', timeout=UI_WAIT_MS)
        state = api_get(server, name, "/api/v1/agent/state/")
        assert state["pause_id"] == "0" and 0 <= state["acw_seconds_left"] <= 3, state
        console.shot("13-after-call-work")
        console.wait_state("#agent-status", "READY")   # by itself, when the 3 s are over
        # The contact, now dispositioned, left the list.
        row.wait_for(state="detached", timeout=UI_WAIT_MS)
        console.stop_working()
        assert console.errors == [], console.errors
    finally:
        close_all(pages)
