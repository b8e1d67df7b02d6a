"""Schemathesis hooks for tests/openapi.rs.

The run authenticates as the bootstrap admin. Locking, rolling, deleting or narrowing that key,
its owner or its organization (all of which Schemathesis finds by reusing ids from responses)
would make every later request answer 401 and test nothing more. Requests aimed at them are
pointed at an id that does not exist instead, and still checked.
"""

import os

import schemathesis

PROTECTED = {i for i in os.environ.get("KEYWARD_PROTECTED_IDS", "").split(",") if i}
STAND_IN = "kw_not_the_runs_own_key"


def _shield(value):
    return STAND_IN if isinstance(value, str) and value in PROTECTED else value


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.path_parameters:
        for name, value in list(case.path_parameters.items()):
            case.path_parameters[name] = _shield(value)
    if isinstance(case.body, dict) and isinstance(case.body.get("ids"), list):
        case.body["ids"] = [_shield(v) for v in case.body["ids"]]
