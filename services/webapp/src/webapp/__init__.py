"""The HTTP frontend over the users gRPC service."""
