"""The Litestar service: routes, request and response structs, auth, errors."""
