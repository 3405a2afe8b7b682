"""The engine's view of the call state: the one implementation lives in
`oml_server.services.call_state`, shared with the REST layer."""
from oml_server.services.call_state import (ORDER, advance, finish, get, live_calls,  # noqa: F401
                                            mark_on_call, now, ring_agent, set_fields)
