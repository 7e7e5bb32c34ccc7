"""The hot-path audit pipeline: events `audit.enqueue`d off the caller's path, written in batches by a child process.

A tools/call must not wait for its own INSERT, and in the web process the writing itself was most of what the
endpoint added to a call: linking, hashing and COPYing each event, and above all holding the GIL that the
event loop needs (docs/benchmarks.md). So hot paths `audit.enqueue` events (built with `audit.queued_event`)
into an in-memory queue (`queue`) that is handed over every `queue.FLUSH_INTERVAL` seconds, one batch at a time,
to this web process's own audit process (`child`, started and supervised by `supervisor`, fed through a pipe in
the format of `wire`). It writes each batch with `audit.record_many` (`write`: redaction and the hash chain
apply) and acknowledges it. The root ASGI lifespan runs the pipeline (`audit.run_pipeline()`).

What is not lost (docs/audit.md#what-is-promised):
- every event whose `enqueue` returned: it is journalled at once in this process's spool (`spool`: one
  ``write(2)`` to a segment file, in the page cache before the request's answer leaves), and its segment is
  deleted only after its batch is committed. A SIGKILL of the web process, of its audit process or of both
  leaves the segments; the node's next start, or another node sharing the spool root, adopts and writes them;
- a clean shutdown: the lifespan flushes, closes the pipe and waits for the last acknowledgement;
- the audit process dying: batches it has not acknowledged are sent again to its replacement, marked as
  adopted like a dead process's spool, so an event committed just before the crash is not written twice;
- the database away (a restart, an outage): writers wait for it, as long as it takes, with the events in the
  spool; a write that fails for any other reason is retried `write.MAX_ATTEMPTS` times, then logged with the
  events' content, never silently dropped.
If the audit process cannot be started, or with ``MCP_AUDIT_WRITER=thread``, a writer thread in this process
does the same work (as it does without a running pipeline, in a bare test harness).

This package imports nothing at its top: `python -m audit.pipeline.child` loads it before Django is set up.
"""
