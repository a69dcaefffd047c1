"""HTTP plumbing shared by every feature: the app factory, the typed application
context and its dependencies, error mapping, OpenAPI and server-sent events."""
