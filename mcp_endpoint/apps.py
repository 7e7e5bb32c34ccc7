from django.apps import AppConfig


class McpEndpointConfig(AppConfig):
    name = "mcp_endpoint"
    verbose_name = "MCP endpoint"

    def ready(self) -> None:
        from mcp_endpoint import signals

        signals.connect()
        from accounts.signals import user_access_ended
        from mcp_endpoint.services import _user_access_ended

        user_access_ended.connect(_user_access_ended, dispatch_uid="mcp-user-access-ended")
        from mcp_endpoint.revocation import _token_revoked
        from oauth.signals import token_revoked

        token_revoked.connect(_token_revoked, dispatch_uid="mcp-token-revoked")
        from mcp_endpoint.registry import load_tool_modules

        load_tool_modules()  # AUTHSEC_TOOL_MODULES: a bad module name stops start-up here
