"""Users, teams, team membership, tiers and billing events: the admin routes and
the account service they share with the `shipstack` CLI."""
