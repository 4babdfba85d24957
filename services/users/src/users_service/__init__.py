"""The users service: a grpc.aio server over a durable store."""
