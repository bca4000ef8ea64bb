"""Writes on the conversation domain. Each service is atomic; its side effects (events, delivery)
run after commit."""
