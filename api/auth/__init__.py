"""Who is calling and what they may do: API keys and browser sessions, the
principal, scope guards, per-credential rate limits and CSRF."""
