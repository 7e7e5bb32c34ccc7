"""Run one call of the published SDK's `CIBAClient` (authsec-sdk 4.7.3), unmodified, in the SDK's virtualenv.

Usage: python ciba_sdk_client.py '<json>' with keys ``base_url``, ``client_id`` (or null), ``op`` and ``args``;
prints the SDK's return value as one JSON line. ``op`` names a CIBAClient method (``initiate_app_approval``,
``poll_for_approval``, ``verify_totp``, ``respond_to_request``, …). Run by tests/sdk/test_ciba_live.py.

``python ciba_sdk_client.py --serve`` runs such commands one per stdin line, each with a new `CIBAClient`, and
answers each with one line ``RESULT`` + ``{"result": …}`` or ``{"error": "<traceback>"}`` (other lines are the
SDK's own output): the SDK's import takes about a second, so the tests keep one process for their calls.
"""

import json
import sys
import traceback
import warnings

from authsec_sdk.ciba import CIBAClient

warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning: the SDK skips TLS checks on 127.0.0.1


RESULT = "\x1eRESULT "  # starts each answer line of --serve


def run(command: dict) -> object:
    client = CIBAClient(client_id=command.get("client_id"), base_url=command["base_url"])
    return getattr(client, command["op"])(*command.get("args", []), **command.get("kwargs", {}))


def serve() -> None:
    for line in sys.stdin:
        try:
            answer = {"result": run(json.loads(line))}
        except Exception:  # the test reports it; the next command still runs
            answer = {"error": traceback.format_exc()}
        print(RESULT + json.dumps(answer), flush=True)


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        serve()
        return
    print(json.dumps(run(json.loads(sys.argv[1]))), flush=True)


if __name__ == "__main__":
    main()
