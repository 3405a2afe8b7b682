"""The engine's view of the call state: the one implementation lives in
`oml_server.services.call_state`, shared with the REST layer."""
from oml_server.services.call_state import (ORDER, advance, fate, finish, get,  # noqa: F401
                                            live_calls,
                                            mark_on_call, now, ring_agent, set_fields)
