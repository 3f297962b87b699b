"""The online scoring gateway: an ASGI app that scores requests and logs them to the shared prediction log."""
