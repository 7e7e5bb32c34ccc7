"""External-service records (metadata here, secrets only in Vault) arrive with the services feature."""
