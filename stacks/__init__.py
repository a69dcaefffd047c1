"""The only code that calls the Pulumi Automation API: workspaces, backend and
environment set-up, and the operations (up, preview, refresh, destroy, history)
run against one stack per deployment."""
