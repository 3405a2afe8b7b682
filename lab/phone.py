"""An agent's SIP phone for the lab: `asterisk-config/lab.sh phone 1001`.

Logs in to the running server as the agent with that extension (the demo lab's user and
password from lab/demo.yaml, or --username/--password), takes the agent's SIP credentials from
`GET /api/v1/sip/credentials/agent/` exactly as an agent console does, registers a SIPp phone
with them to the lab Asterisk and answers every call it gets, streaming audio
(tests/integration/sipp/agent_answer.xml), until Ctrl-C, when it un-registers.

Environment: OML_API (http://127.0.0.1:8000), SIP_PORT (the lab's, 5070), DEMO (lab/demo.yaml).
"""
import argparse
import os
import signal
import sys
import threading
import time

import requests
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from lab import SippPeer, sipp_register  # noqa: E402

REREGISTER_EVERY = 240   # seconds; each REGISTER asks for EXPIRES
EXPIRES = 300
RENEW_BEFORE = 600       # fetch new credentials this long before the current ones expire


class Refused(Exception):
    """Something a user can fix: said in one sentence, no traceback."""


def demo_login(demo_path, extension):
    """(username, password) of the demo user whose agent has `extension`."""
    with open(demo_path, encoding="utf-8") as handle:
        demo = yaml.safe_load(handle) or {}
    for user in demo.get("users", []):
        if str((user.get("agent") or {}).get("sip_extension")) == str(extension):
            return user["username"], user["password"]
    raise Refused(f"no agent with extension {extension} in {demo_path}: "
                  "pass --username and --password")


class Api:
    def __init__(self, url, username, password):
        self.url, self.username, self.password = url.rstrip("/"), username, password
        self.http = requests.Session()
        self.http.trust_env = False

    def _call(self, method, path, **kwargs):
        try:
            return self.http.request(method, self.url + path, timeout=10, **kwargs)
        except requests.ConnectionError:
            raise Refused(f"no server answers at {self.url} (is `make run` running? OML_API "
                          "names another)")

    def sip_credentials(self):
        """A fresh (sip_user, sip_password), logging in first (a token is not kept for hours)."""
        login = self._call("POST", "/api/v1/login",
                           json={"username": self.username, "password": self.password})
        if login.status_code != 200:
            raise Refused(f"login as {self.username} refused: {login.status_code} {login.text}")
        token = login.json()["token"]
        answer = self._call("GET", "/api/v1/sip/credentials/agent/",
                            headers={"Authorization": f"Bearer {token}"}).json()
        if answer.get("status") != "OK":
            raise Refused(f"SIP credentials refused: {answer}")
        return answer["sip_user"], answer["sip_password"]


def expiry_of(sip_user):
    return int(sip_user.split(":", 1)[0])


def run(args):
    username, password = args.username, args.password
    if not username:
        username, password = demo_login(args.demo, args.extension)
    elif password is None:
        raise Refused("--username needs --password")
    api = Api(args.api, username, password)
    credentials = api.sip_credentials()
    phone = SippPeer("agent_answer.xml", port=args.port or None).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        sipp_register([(args.extension, *credentials)], args.sip_port, phone.port, expires=EXPIRES)
        print(f"phone {args.extension} ({username}) registered to 127.0.0.1:{args.sip_port} "
              f"as {credentials[0]}; answering on udp 127.0.0.1:{phone.port} with audio. "
              "Ctrl-C to stop.", flush=True)
        while not stop.wait(REREGISTER_EVERY):
            if not phone.alive():
                raise Refused(f"the SIPp phone exited: {phone.errors()}")
            if expiry_of(credentials[0]) - time.time() < RENEW_BEFORE:
                credentials = api.sip_credentials()
            sipp_register([(args.extension, *credentials)], args.sip_port, phone.port,
                          expires=EXPIRES)
        try:
            sipp_register([(args.extension, *credentials)], args.sip_port, phone.port, expires=0)
        except RuntimeError as exc:  # Asterisk already gone: nothing to un-register from
            print(f"un-REGISTER failed: {exc}", file=sys.stderr)
        print(f"phone {args.extension} stopped", flush=True)
    finally:
        phone.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lab.sh phone", description=__doc__.split("\n\n")[0])
    parser.add_argument("extension", help="the agent's SIP extension, e.g. 1001")
    parser.add_argument("--username", help="the agent's user (default: from the demo file)")
    parser.add_argument("--password")
    parser.add_argument("--api", default=os.environ.get("OML_API", "http://127.0.0.1:8000"))
    parser.add_argument("--sip-port", type=int, default=int(os.environ.get("SIP_PORT", 5070)))
    parser.add_argument("--port", type=int, default=0, help="the phone's UDP port (default: free)")
    parser.add_argument("--demo", default=os.environ.get("DEMO", os.path.join(REPO, "lab", "demo.yaml")))
    args = parser.parse_args(argv)
    try:
        run(args)
    except Refused as exc:
        print(f"lab.sh phone: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # a REGISTER Asterisk refused, SIPp not starting
        print(f"lab.sh phone: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
