"""Every message of the contract, in one place.

The msgids are English; the Spanish catalogue (translations/es) gives OMniLeads' Spanish
wording, the default language. Lazy strings are rendered when the response is serialised, in
the request's language. Messages OMniLeads sends in English whatever the language are plain str.
"""
from flask_babel import lazy_gettext as _

# Framework-level (`{"detail": ...}`)
NO_CREDENTIALS = _("Authentication credentials were not provided.")
TOKEN_HEADER_EMPTY = _("Invalid token header. No credentials provided.")
TOKEN_HEADER_SPACES = _("Invalid token header. Token string should not contain spaces.")
INVALID_TOKEN = "Invalid Token"
TOKEN_EXPIRED = "The Token is expired"
USER_INACTIVE = "User is not active"
NO_PERMISSION = _("You do not have permission to perform this action.")
CSRF_FAILED = "CSRF Failed: CSRF token missing or incorrect."
NOT_FOUND = _("Not found.")
METHOD_NOT_ALLOWED = _('Method "%(method)s" not allowed.')
UNSUPPORTED_MEDIA = _('Unsupported media type "%(media_type)s" in request.')
MALFORMED_BODY = _("JSON parse error - %(error)s")
BODY_TOO_LARGE = _("Request body too large.")
INVALID_CREDENTIALS = "Invalid Credentials or activate account"

# Field-level
FIELD_REQUIRED = _("This field is required.")
FIELD_BLANK = _("This field may not be blank.")
INVALID_CHOICE = _("Select a valid choice. That choice is not one of the available choices.")
INVALID_PHONE = _('Only 3-25 digits allowed and can begin with "+".')

# Business (`{"status": "ERROR", ...}`)
DATA_ERRORS = _("There were errors on received data")
UNKNOWN_EXTERNAL_SYSTEM = _("Unkown external system")
INVALID_CAMPAIGN_ID = _("You must provide a valid idCampaign")
CAMPAIGN_NOT_FOUND = _("Campaign not found")
CAMPAIGN_NO_PERMISSION = _("You don't have permission to edit the campaign")
INCORRECT_FIELDS = _("Incorrect fields were received")
FIELD_MANDATORY = _("The field is required")
CONTACT_ADDED = _("Contact added")
AGENT_NOT_IN_CAMPAIGN = _("The agent is not related to campaign")
CONTACT_NOT_IN_CAMPAIGN = _("The contact is not related to campaign.")
AGENT_NOT_IN_EXTERNAL_SYSTEM = _("The agent is not related to external system.")
CALL_FAILED = _("Error when executing the call")
SIP_PASSWORD_FAILED = _("Error creating sip password")
DUPLICATE_EXTERNAL_ID = _("A contact with that external id already exist in database")
DUPLICATE_PHONE = _("A contact with that phone number already exists.")

# Always English
OPTION_NOT_FOUND = "Disposition option id not found"
CONTACT_ID_NOT_FOUND = "Contact id not found"
DUPLICATE_DISPOSITION = "There is another disposition for this contact on this campaign"
DUPLICATE_EXTERNAL_CONTACT = "There is another contact with this external id on this database"
CONTACT_DATA_INVALID = "Contact data is invalid"
CALLID_TOO_LONG = "Ensure this field has no more than 32 characters."
NOT_A_STRING = "Not a valid string."

# Reasons a call cannot be placed (the `errors` list of "Error when executing the call")
AGENT_OFFLINE = _("The agent's phone is not registered.")
AGENT_BUSY = _("The agent is already on a call.")
TELEPHONY_UNAVAILABLE = _("The telephony server is not reachable.")
TELEPHONY_NOT_CONFIGURED = _("Calls are not enabled on this server.")
AGENT_EXTENSION_UNKNOWN = _("The agent's extension does not exist in the telephony server.")

TOO_MANY_LOGINS = _("Too many failed login attempts; try again in %(seconds)s seconds.")
TOO_MANY_CALLS = _("Too many calls requested for this agent; try again shortly.")


def asterisk_refused(error):
    """Asterisk's own words, inside the localised sentence (rendered lazily, like the rest)."""
    return _("The telephony server refused the call: %(error)s", error=error)

# Supervision and presence (contract-calls §4, §5)
# OMniLeads answers these two in English whatever the language.
WRONG_PROFILE = "Wrong user profile"
AGENT_NOT_FOUND = "Agent not found"
NO_SUCH_ACTION = _("Action does not exist")
AGENT_NOT_ON_CALL = _("The agent is not on a call")
AGENT_NOT_LOGGED_IN = _("The agent is not logged in")
NO_SUPERVISOR_PHONE = _("The supervisor has no SIP extension")
SUPERVISION_UNAVAILABLE = _("Listening in is not available on this server")
INVALID_DATE = _("Invalid date, use YYYY-MM-DD")
NOT_AN_AGENT = _("User without agent profile")
INVALID_FIELD_VALUE = _("Invalid value for %(field)s")

# call/spy (contract-calls §3): `{"error": ...}`; Spanish as OMniLeads writes them
COMMAND_RECEIVED = _("Command received")
MISSING_PARAMETER = _("Missing required parameter: %(name)s")
WHISPER_CHOICES = _("whisper must be one of: none, out, both, in")
SUPERVISOR_ID_INVALID = _("supervisor_id must be a valid integer")
SUPERVISOR_NOT_FOUND = _("Supervisor not found")
ZIP_STARTED = _("Recordings zip export in progress")

# make_call_outside_campaign (contract-calls §5)
OUTSIDE_CALL_STARTED = _("Out of campaign call started")
INVALID_DESTINATION = _("Invalid destination value")
INVALID_DESTINATION_TYPE = _("Invalid destination_type value")

# In-call commands (contract-calls §2, §3). OMniLeads' own texts are Spanish literals.
MISSING_PARAMETERS = "Faltan parámetros: %s"
OML_MISSING_PARAMETER = "Falta parámetro obligatorio: %s"
# [better] refusals, es/en
CALL_NOT_LIVE = _("The call does not exist or has already ended.")
CALL_NOT_CONNECTED = _("The call is not connected yet.")
TARGET_AGENT_UNKNOWN = _("Target agent not found.")
TARGET_IS_CURRENT = _("The call is already with that agent.")
INVALID_ENDPOINT = _("The endpoint must be an agent's extension or a phone number "
                     "(3-25 digits, may begin with +).")
INVALID_HOLD_ACTION = _("action must be hold or unhold.")
LEG_NOT_LIVE = _("That leg does not exist or is not live.")
CONSULT_UNDER_WAY = _("A consultation is already under way on this call.")
NO_CONSULT = _("There is no consultation under way on this call.")
CONSULT_NOT_ANSWERED = _("The consulted party has not answered yet.")

# CRM: external sites, their authentications, webhooks (contract-calls §6)
SITES_LISTED = _("External sites were obtained successfully")
SITE_FOUND = _("External site obtained successfully")
SITE_CREATED = _("External site created successfully")
SITE_UPDATED = _("External site updated successfully")
SITE_DELETED = _("External site deleted successfully")
SITE_HIDDEN = _("External site hidden successfully")
SITE_SHOWN = _("External site shown successfully")
SITE_NOT_FOUND = _("External site not found")
AUTHS_LISTED = _("External site authentications were obtained successfully")
AUTH_FOUND = _("External site authentication obtained successfully")
AUTH_CREATED = _("External site authentication created successfully")
AUTH_UPDATED = _("External site authentication updated successfully")
AUTH_DELETED = _("External site authentication deleted successfully")
AUTH_NOT_FOUND = _("External site authentication not found")
AUTH_TEST_OK = _("The authentication obtained a token")
AUTH_TEST_FAILED = _("The authentication did not obtain a token")
NAME_TAKEN = _("That name is already in use.")
DURATION_FIELD_NEEDED = _("Needed when the duration is 0 (the answer's field with the lifetime).")
GET_TAKES_NO_FORMAT = _("A GET site takes no format.")
POST_NEEDS_FORMAT = _("A POST site needs a format.")
NO_TARGET_HERE = _("A JSON or server-triggered site takes no target.")
WEBHOOK_NOT_FOUND = _("Webhook not found")
EVENTS_LIST = _("A list of event types, or \"*\".")
UNKNOWN_EVENTS = _("Unknown event types")
NO_CRM_SITE = _("The call's campaign has no external site.")
