"""The REST contract's blueprints. Each module owns one resource and stays thin."""
import importlib

# Module name -> attribute holding its flask-smorest Blueprint. A module that does not exist
# yet is skipped, so the contract can be built up resource by resource.
BLUEPRINT_MODULES = (
    "auth",            # login, web session login/logout
    "campaigns",       # database_metadata, dispositionOptions
    "contacts",        # new_contact
    "dispositions",    # disposition CRUD, new_contact/disposition
    "agent_session",   # asterisk_* endpoints
    "sip",             # sip credentials
    "calls",           # makeCall, hangupCall, call records
    "call_control",    # transfers, hold, hangup-leg (contract-calls §2, §3)
    "health",          # health [extension]
    "console",         # the agent console page /agente/ and its state endpoint [extension]
    "supervision",     # supervision/agents, agent_status, action_on_agent
    "presence",        # the console heartbeat
    "recordings",      # call_record, grabacion/archivo, grabacion/descarga_masiva
    "outside_calls",   # make_call_outside_campaign
    "campaign_contacts",  # campaign/<id>/contacts/ (DataTables)
    "external_sites",  # CRM external sites and their authentications
    "webhooks",        # webhook subscriptions and their delivery log [extension]
    "events",          # the live event stream [extension]
)


def register_blueprints(app, api):
    for name in BLUEPRINT_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        api.register_blueprint(module.blp)
        extra = getattr(module, "plain_blueprint", None)
        if extra is not None:  # HTML pages that do not belong in the OpenAPI document
            app.register_blueprint(extra)
