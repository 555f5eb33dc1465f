"""One browser tab's app process under `sfarm web`: textual-serve's AppService, started from an
argument list (no shell between the server and the app, so a signal reaches the app itself) and
always ended: asked to quit, then terminated, then killed, and reaped.

The process inherits the server's whole environment (SSH_AUTH_SOCK included): it reaches the
farm's nodes with the operator's credentials, as every command run on that node does.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from asyncio.subprocess import PIPE, Process
from collections.abc import Awaitable, Callable, Sequence

from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager

QUIT_GRACE_S = 5.0  # an app asked to quit has this long to close its output
EXIT_GRACE_S = 2.0  # and then this long to exit
TERMINATE_GRACE_S = 3.0  # then SIGTERM (Textual's web driver exits cleanly on it), then SIGKILL


class AppSession(AppService):
    """The app process behind one websocket; `processes` holds it while it lives, so the
    server can end whatever is left when it stops."""

    def __init__(self, argv: Sequence[str], processes: set[Process], *,
                 write_bytes: Callable[[bytes], Awaitable[None]],
                 write_str: Callable[[str], Awaitable[None]],
                 close: Callable[[], Awaitable[None]],
                 download_manager: DownloadManager) -> None:
        super().__init__(shlex.join(argv), write_bytes=write_bytes, write_str=write_str,
                         close=close, download_manager=download_manager)
        self.argv = tuple(argv)
        self._processes = processes
        self._stopped = False

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Process:
        process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=PIPE, stdout=PIPE, stderr=PIPE,
            env=self._build_environment(width=width, height=height))
        self._processes.add(process)
        self._process = process
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    async def run(self) -> None:
        """Relay the app's output until it ends, then end the browser's session too: the page
        then says "Session ended" instead of waiting for an app that failed to start."""
        await super().run()
        with contextlib.suppress(Exception):
            await self.remote_close()

    async def stop(self) -> None:
        """Ask the app to quit, and end its process if it has not within QUIT_GRACE_S; a second
        call does nothing."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(super().stop(), QUIT_GRACE_S)
        if self._process is not None:
            await end_process(self._process)
            self._processes.discard(self._process)


async def end_process(process: Process) -> None:
    """Let `process` exit by itself for EXIT_GRACE_S, terminate it if it has not, kill it if it
    outlives TERMINATE_GRACE_S, and reap it: no process and no zombie is left."""
    # An app that has closed its output is usually exiting: asyncio's child watcher reaps it.
    # Signalling it before would let subprocess's own check (send_signal polls first) reap it
    # instead, and the watcher would then warn of an unknown child.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), EXIT_GRACE_S)
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), TERMINATE_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    await process.wait()
