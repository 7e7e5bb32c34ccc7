"""Models of the hosted MCP endpoint (applications' tool selection, auth sessions) arrive with the MCP feature."""
