"""The hot-path audit pipeline: events `audit.enqueue`d off the caller's path, written in batches by a child process.

A tools/call must not wait for its own INSERT, and in the web process the writing itself was most of what the
endpoint added to a call: linking, hashing and COPYing each event, and above all holding the GIL that the
event loop needs (docs/benchmarks.md). So hot paths `audit.enqueue` events (built with `audit.queued_event`)
into an in-memory queue (`queue`) that is handed over every `queue.FLUSH_INTERVAL` seconds, one batch at a time,
to this web process's own audit process (`child`, started and supervised by `supervisor`, fed through a pipe in
the format of `wire`). It writes each batch with `audit.record_many` (`write`: redaction and the hash chain
apply) and acknowledges it. The root ASGI lifespan runs the pipeline (`audit.run_pipeline()`).

What is not lost:
- a clean shutdown: the lifespan flushes, closes the pipe and waits for the last acknowledgement;
- the audit process dying: batches it has not acknowledged are sent again to its replacement (a batch that
  was committed just before the crash can then appear twice: duplicated rather than lost);
- the web process dying: the audit process still writes every batch it has received, then exits at the end
  of the pipe. What was enqueued but not yet handed over (at most one interval) is lost.
- a failed write is retried `write.MAX_ATTEMPTS` times, then logged with the events' content, never silently
  dropped.
If the audit process cannot be started, or with ``MCP_AUDIT_WRITER=thread``, a writer thread in this process
does the same work (as it does without a running pipeline, in a bare test harness).

This package imports nothing at its top: `python -m audit.pipeline.child` loads it before Django is set up.
"""
