"""Test support shared by the users service's, the webapp's and the integration test suites."""
