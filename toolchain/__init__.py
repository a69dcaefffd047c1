"""Builds and starts the real parts shipstack stands on: the Go toolchain and the local cluster."""
