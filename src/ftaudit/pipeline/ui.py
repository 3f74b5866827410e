"""What the user sees while `ftaudit train` runs: rich progress on stderr, one live line with the compute used vs
the accepted limit, and the summary at the end. Quiet (nothing on stderr but errors) with `--json` or on ranks > 0.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager

from ftaudit.regulation.figures import flops2


def _g(x: float | None) -> str:
    return "n/a" if x is None else flops2(x)


class UI:
    def __init__(self, *, quiet: bool = False):
        self.quiet = quiet
        self._progress = None
        self._task = None
        self._loss: float | None = None
        if not quiet:
            from rich.console import Console

            self.console = Console(stderr=True, highlight=False)

    # -- plain messages
    def info(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def warn(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"[yellow]warning:[/] {text}")

    def stage(self, name: str, status: str, seconds: float, reason: str | None = None) -> None:
        if self.quiet:
            return
        colour = {"ok": "green", "skipped": "yellow", "stopped": "red", "failed": "red", "refused": "red"}[status]
        why = f" — {reason}" if reason else ""
        self.console.print(f"[bold]{name:<9}[/] [{colour}]{status}[/] ({seconds:.1f}s){why}")

    def status(self, text: str):
        """A spinner for a long step without a known length (loading, tokenising)."""
        if self.quiet:
            from contextlib import nullcontext

            return nullcontext()
        return self.console.status(text)

    # -- the training progress bar with the live compute line
    def train_begin(self, max_steps: int, start_step: int) -> None:
        if self.quiet:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("{task.description}"),
                                  console=self.console, transient=False)
        self._progress.start()
        self._task = self._progress.add_task("", total=max_steps, completed=start_step)
        self._t0 = time.time()

    def train_step(self, step: int, flops: float | None, limit: float | None) -> None:
        if self._progress is None:
            return
        used = f"compute {_g(flops)} / {_g(limit)} FLOP"
        if flops is not None and limit:
            share = flops / limit
            used += f" ({share:.2%} of limit)" if share >= 1e-4 else f" ({share:.2g} of limit)"
        loss = f"loss {self._loss:.3f} · " if self._loss is not None else ""
        self._progress.update(self._task, completed=step, description=loss + used)

    def train_log(self, logs: dict) -> None:
        if "loss" in logs:
            self._loss = float(logs["loss"])

    def train_end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # -- the end
    def summary(self, lines: list[tuple[str, str]]) -> None:
        if self.quiet:
            return
        from rich.table import Table

        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for k, v in lines:
            table.add_row(k, v)
        self.console.rule("ftaudit train — summary")
        self.console.print(table)


@contextmanager
def stdout_to_stderr():
    """For `--json`: while the job runs, everything else written to stdout goes to stderr, so stdout carries the one
    JSON object only. Libraries print there (DeepSpeed's logger: "Setting accelerator to CPU", on import by
    transformers whenever deepspeed is installed); the redirect is on file descriptor 1, so handlers that hold
    sys.stdout and native code follow it too."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def stdout_json(obj) -> None:
    import json

    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()
