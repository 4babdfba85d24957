"""Test support shared by the users service's, the webapp's and the integration test suites.

`ports` (free_port), `processes` (server subprocesses and their logs), `waiting` (for a
condition, a port, a gRPC health status). It imports nothing from either service.
"""
