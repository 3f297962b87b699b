"""Prefect Block types of the platform: typed configuration and credentials, every field described, secrets as
SecretStr. Tasks take a block, never a bare secret string."""
