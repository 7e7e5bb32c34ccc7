"""SPIFFE workload identities: per-tenant trust domains, X.509-SVIDs from Vault PKI or a SPIRE agent.

``from workloads import QuickStartSVID`` is the seed's API for tool code (see `workloads.quickstart`).
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {"QuickStartSVID", "PeerNotAllowedError", "SpiffeDisabledError", "SpiffeUnavailableError", "check_peer"}


def __getattr__(name: str) -> Any:
    # Imported lazily: the app package is loaded while Django populates its registry.
    if name in _EXPORTS:
        from workloads import quickstart

        return getattr(quickstart, name)
    raise AttributeError(f"module 'workloads' has no attribute {name!r}")
