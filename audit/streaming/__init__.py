"""Streaming each schema's audit log to SIEMs: syslog (RFC 5424 over TCP or TLS), HTTPS webhooks, OTLP logs.

Delivery runs in Celery only, never in a request: beat's `audit.tasks.stream_due_sinks` looks for sinks behind
the log, `audit.tasks.deliver_sink` sends each one's committed events in chain order (`delivery`), and a sink's
cursor moves only past what its receiver accepted. Modules, each depending only on those above it:

- `ocsf`: the OCSF category and class of an action; `document`: an event as the SIEMs receive it;
- `net`: `DeliveryError`, guarded addresses, TLS trust; `syslog`, `webhook`, `otlp`: the three transports;
- `secrets`: a sink's secret in Vault; `delivery`: cursor, order, retry and backoff, dead letter;
- `services`: the dashboard's writes (a sink's secret, retry now, delete).
"""
