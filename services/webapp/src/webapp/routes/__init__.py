"""The webapp's HTTP routes: the JSON API, the streams, the import, health and the HTML UI.

Each module's `router` is put on the app itself (app.py). Routes speak to the users service only
through the gateway (webapp.gateway), never through grpc or users.v1.
"""
