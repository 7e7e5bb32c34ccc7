"""The seed's example tools, served by application ``demo``. Their requirements match `rbac.demo.DEMO_POLICIES`."""

from __future__ import annotations

from typing import Any, Literal

from mcp_endpoint.registry import ToolError, protected_by_AuthSec


def _text(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


@protected_by_AuthSec("hello", description="Greets the signed-in user.", inputSchema={"type": "object"})
async def hello(arguments: dict) -> list:
    return _text(f"Hello, {arguments['_user_info']['email']}!")


@protected_by_AuthSec("calculator", description="Adds, subtracts, multiplies or divides two numbers.")
async def calculator(operation: Literal["add", "subtract", "multiply", "divide"], a: float, b: float) -> str:
    if operation == "add":
        result = a + b
    elif operation == "subtract":
        result = a - b
    elif operation == "multiply":
        result = a * b
    else:
        if b == 0:
            raise ToolError("Division by zero is not allowed.")
        result = a / b
    return f"{result:g}"


@protected_by_AuthSec("admin_panel", roles=["admin"], description="The admin panel.", inputSchema={"type": "object"})
async def admin_panel(arguments: dict) -> list:
    return _text("Admin panel accessed")


@protected_by_AuthSec(
    "admin_dashboard", roles=["admin"], description="The admin dashboard.", inputSchema={"type": "object"}
)
async def admin_dashboard(arguments: dict) -> list:
    return _text(f"Welcome to admin dashboard, {arguments['_user_info']['email']}!")


@protected_by_AuthSec(
    "create_resource",
    scopes=["write"],
    description="Creates a resource with the given name.",
    inputSchema={
        "type": "object",
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200}},
        "required": ["name"],
        "additionalProperties": False,
    },
)
async def create_resource(arguments: dict) -> list:
    return _text(f"Resource '{arguments['name']}' created successfully!")


@protected_by_AuthSec(
    "view_analytics",
    scopes=["read"],
    resources=["analytics"],
    require_all=True,
    description="Analytics.",
    inputSchema={"type": "object"},
)
async def view_analytics(arguments: dict) -> list:
    return _text("Analytics dashboard")


@protected_by_AuthSec(
    "view_reports",
    roles=["admin", "manager", "analyst"],
    description="Business reports.",
    inputSchema={"type": "object"},
)
async def view_reports(arguments: dict) -> list:
    return _text("Business reports")


@protected_by_AuthSec(
    "deploy_production",
    roles=["admin", "deployer"],
    scopes=["write"],
    resources=["production"],
    require_all=True,
    description="Starts a production deployment.",
    inputSchema={"type": "object"},
)
async def deploy_production(arguments: dict) -> list:
    return _text("Deployment initiated")


@protected_by_AuthSec(
    "engineering_tools",
    groups=["engineering", "devops"],
    description="The engineering dashboard.",
    inputSchema={"type": "object"},
)
async def engineering_tools(arguments: dict) -> list:
    return _text("Engineering dashboard")


@protected_by_AuthSec(
    "sensitive_operations",
    roles=["admin", "superuser"],
    groups=["security-team"],
    scopes=["write", "admin"],
    resources=["production", "sensitive-data"],
    require_all=True,
    description="A sensitive operation.",
    inputSchema={"type": "object"},
)
async def sensitive_operations(arguments: dict) -> list:
    return _text("Sensitive operation completed")


@protected_by_AuthSec(
    "list_my_repos", scopes=["read"], description="Lists your GitHub repositories.", inputSchema={"type": "object"}
)
async def list_my_repos(arguments: dict, session: Any) -> list:
    # The seed's GitHub example: the token comes from Vault through ServiceAccessSDK (checked and audited there).
    from asgiref.sync import sync_to_async
    from django.conf import settings

    from authsec_site.lib import outbound
    from services.sdk import ServiceAccessError, ServiceAccessSDK

    try:  # one checked, audited read gives both the token and the service URL
        service = await ServiceAccessSDK(session).get_service_credentials("GitHub API Integration")
    except ServiceAccessError as exc:
        raise ToolError(str(exc)) from None
    github_token = service["credentials"].get("access_token")
    if not github_token:
        raise ToolError('The service "GitHub API Integration" has no access token stored.')
    url = (service["url"] or "https://api.github.com").rstrip("/") + "/user/repos"
    try:  # the service URL is an admin's choice: through the guarded door (public addresses only)
        response = await sync_to_async(outbound.fetch, thread_sensitive=False)(
            url,
            headers={"Authorization": f"Bearer {github_token}", "Accept": "application/vnd.github+json"},
            timeout=settings.SERVICES_HTTP_TIMEOUT,
            max_bytes=4 * 1024 * 1024,
        )
    except outbound.FetchError as exc:
        raise ToolError(f"GitHub could not be reached ({exc.reason}).") from None
    if response.status in (401, 403):
        raise ToolError(f"GitHub refused the stored token (HTTP {response.status}); ask an admin to replace it.")
    if response.status != 200:
        raise ToolError(f"GitHub answered HTTP {response.status}.")
    try:
        repos = response.json()
        repo_list = "\n".join(f"- {repo['full_name']} ({repo['stargazers_count']} ⭐)" for repo in repos[:10])
    except (ValueError, KeyError, TypeError):
        raise ToolError("GitHub answered with something that is not a repository list.") from None
    return _text(f"Your GitHub Repositories:\n{repo_list}")
