"""Drift summaries and captures leave the container off the answer's path: one background thread
puts them into the model bucket while requests are answered.

Why a thread: an API Gateway proxy integration answers when the handler returns, and the Python
runtime has no hook after that. Putting the objects in the request that made them due (as before)
added an S3 PUT, with its retries, to that request's latency; putting them at the start of the
next invocation moves the same delay onto another request; a Lambda extension's post-invocation
phase holds the execution environment until it is done, so the next request to it waits all the
same, and needs the Extensions API. A thread's PUT overlaps the time between invocations and the
next requests' own work (it waits on the network, with the GIL released), and delays no answer.

What it costs (docs/reliability.md): Lambda freezes the environment once the handler returns, so
a PUT in flight then resumes at the next invocation (the clients re-sign and retry a request whose
connection was closed meanwhile); objects still queued when the environment is shut down are
lost, as the rows held in memory already were (``mlstack_core.capture``); the queue is bounded
(``MAX_PENDING``), and what does not fit is dropped and logged. The thread has a client of its
own when the serving path's is ``AwsHttp`` (its connections are not shared between threads);
boto3's clients are thread-safe.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from mlstack_core.observability.requests import logger

# Objects waiting to be written, at most: a few intervals' worth of every served version.
MAX_PENDING: Final = 64


@dataclass
class MonitoringWriter:
    """Writes ``(key, body)`` pairs with ``put`` in a background thread, in order."""

    put: Callable[[str, bytes], None]
    max_pending: int = MAX_PENDING
    written: int = 0
    failed: int = 0
    dropped: int = 0
    _queue: queue.Queue[tuple[str, bytes]] = field(init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._queue = queue.Queue(maxsize=max(1, self.max_pending))

    def submit(self, due: list[tuple[str, bytes]]) -> int:
        """Queue ``due`` for writing without waiting for it; the number of objects dropped
        because the queue was full."""
        dropped = 0
        for item in due:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                dropped += 1
                self.dropped += 1
                logger.warning("Monitoring data dropped: queue full", extra={"key": item[0]})
        if due and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._run, name="monitoring-writer", daemon=True)
            self._thread.start()
        return dropped

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until everything queued is written (or has failed);
        whether it was. For tests and for a container's end, never for a request."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def _run(self) -> None:
        while True:
            key, body = self._queue.get()
            try:
                self.put(key, body)
                self.written += 1
            except Exception:  # best effort: the prediction was answered long ago
                self.failed += 1
                logger.warning("Monitoring data not written", extra={"key": key}, exc_info=True)
            finally:
                self._queue.task_done()
