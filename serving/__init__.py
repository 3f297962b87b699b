"""The online gateway: every deployed model behind one ASGI service (see serving.app)."""
