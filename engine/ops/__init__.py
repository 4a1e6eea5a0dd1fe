"""What a host watches: the Prometheus metrics every process declares (``metrics``) and the HTTP
endpoint that serves them with a liveness answer (``serve``). Below the store, the runtime and the
bot, which all count into it; it imports nothing of ours but ``engine.errors``."""
