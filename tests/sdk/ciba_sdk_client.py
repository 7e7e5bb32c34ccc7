"""Run one call of the published SDK's `CIBAClient` (authsec-sdk 4.7.3), unmodified, in the SDK's virtualenv.

Usage: python ciba_sdk_client.py '<json>' with keys ``base_url``, ``client_id`` (or null), ``op`` and ``args``;
prints the SDK's return value as one JSON line. ``op`` names a CIBAClient method (``initiate_app_approval``,
``poll_for_approval``, ``verify_totp``, ``respond_to_request``, …). Run by tests/sdk/test_ciba_live.py.
"""

import json
import sys
import warnings

from authsec_sdk.ciba import CIBAClient

warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning: the SDK skips TLS checks on 127.0.0.1


def main() -> None:
    command = json.loads(sys.argv[1])
    client = CIBAClient(client_id=command.get("client_id"), base_url=command["base_url"])
    result = getattr(client, command["op"])(*command.get("args", []), **command.get("kwargs", {}))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
