"""The engine's view of the call state: the one implementation lives in
`oml_server.services.call_state`, shared with the REST layer."""
from oml_server.services.call_state import (ORDER, add_legs, advance, end_read,  # noqa: F401
                                            call_of_leg, claim_agent, create, fate, finish, get,
                                            leg_gone, legs_of, legs_to_clear,
                                            mark_on_call, node, note, now, read_alone, release,
                                            release_agent, ring_agent, row, set_fields,
                                            take_over)
