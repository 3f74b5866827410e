"""The main process of `ftaudit data scan`: jobs out to the workers (local processes or Ray) in order,
results folded back in the same order — the report is the same for any number of workers, shard size or engine —
a checkpoint now and then, progress on the terminal."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ftaudit.data.evidence import FileFingerprint
from ftaudit.data.scan_aggregate import Aggregate, FindingsWriter, classify, file_fingerprint
from ftaudit.data.scan_worker import VANISHED, Job, ScanOptions, ShardUnavailable, run_job, units
from ftaudit.errors import BadInput


def everything_personal(finding_type: str) -> str:
    return "personal_data"


class ScanRun:
    """The main process of a scan: jobs out to the workers in order, results folded back in the same order (the
    report is the same for any number of workers), a checkpoint now and then, the findings file at the end."""

    def __init__(self, opts: ScanOptions, roles: list[tuple[str, Path]], formats: dict[Path, str],
                 findings_path, checkpoint_path: Path | None, resume: bool, checkpoint_seconds: float):
        from ftaudit.data import checkpoint

        self.opts, self.roles, self.formats = opts, roles, formats
        self.checkpoint_path, self.checkpoint_seconds = checkpoint_path, checkpoint_seconds
        self.inputs = checkpoint.fingerprint([p for _, p in roles]) if checkpoint_path else []
        state = None
        if checkpoint_path is not None and resume:
            state = checkpoint.load(checkpoint_path, options=opts, inputs=self.inputs)
        elif checkpoint_path is not None:
            checkpoint.discard_stale(checkpoint_path)
        self.writer = FindingsWriter(findings_path, with_source=sum(r == "train" for r, _ in roles) > 1,
                                      resume=(state.findings_tmp, state.findings_bytes) if state else None)
        if state is not None:
            self.agg, self.per_file, self.errors = state.aggregate, state.per_file, state.errors
            self.agg.findings = self.writer
            self.done, self.bytes_done = state.jobs_done, state.bytes_done
        else:
            self.agg = Aggregate(opts, self.writer, classify if opts.detect else everything_personal)
            self.agg.sources = [str(p) for _, p in roles]
            self.per_file, self.errors = Counter(), {i: [] for i in range(len(roles))}
            self.done = self.bytes_done = 0

    def jobs(self) -> Iterator[Job]:
        opts = self.opts
        for file_no, (role, p) in enumerate(self.roles):
            if not p.exists():
                raise ShardUnavailable(VANISHED.format(p=p))
            size = p.stat().st_size if p.is_file() else 0
            for u in units(p, self.formats[p], shard_bytes=opts.shard_bytes, batch_size=opts.batch_size,
                           on_error=opts.on_error):
                yield Job(opts, role, file_no, path=str(p), span=u.span, size=size, batch=u.batch, errors=u.errors)

    def fold(self, progress: bool, engine: str = "local", ray_address: str | None = None,
             lsh: str = "driver") -> tuple["Aggregate", list[FileFingerprint]]:
        """`lsh="cluster"` (Ray only): the records' keys and signatures stay in the cluster and duplicates and
        leaks are found there after the fold (`lsh_shuffle`); no checkpoint is written (the parts die with the
        driver)."""
        from functools import partial
        from itertools import islice

        from ftaudit.data import checkpoint, lsh_shuffle, parallel, ray_engine
        from ftaudit.data.loading import SHARDED

        fn, parts = run_job, []
        if lsh == "cluster":
            fn, partitions = lsh_shuffle.run_and_split, ray_engine.cpus(ray_engine.connect(ray_address))
            imap_ordered = partial(ray_engine.imap_keeping, address=ray_address, args=(partitions,),
                                   keep=2 * partitions)
            self.agg.index_here, self.checkpoint_path = False, None
        elif engine == "ray":
            imap_ordered = partial(ray_engine.imap_ordered, address=ray_address)
        else:
            imap_ordered = partial(parallel.imap_ordered, workers=self.opts.workers)

        agg = self.agg
        total = sum(p.stat().st_size for _, p in self.roles if self.formats[p] in SHARDED)
        bar = Progress(progress, total_bytes=total, done_bytes=self.bytes_done)
        last_save = time.monotonic()
        try:
            for result in imap_ordered(fn, islice(self.jobs(), self.done, None)):
                if lsh == "cluster":
                    result, refs = result
                    parts.append(refs)
                role, file_no, out, nbytes = result
                source = agg.sources[file_no]
                if role == "train":
                    self.per_file[file_no] += agg.add_train(file_no, source, out)
                else:
                    self.per_file[file_no] += agg.add_eval(source, out)
                self.errors[file_no] += out.errors
                self.done, self.bytes_done = self.done + 1, self.bytes_done + nbytes
                bar.advance(len(out.records), nbytes, source)
                if self.checkpoint_path is not None and time.monotonic() - last_save >= self.checkpoint_seconds:
                    self._save()
                    last_save = time.monotonic()
            if lsh == "cluster":
                evals = frozenset(i for i, (role, _) in enumerate(self.roles) if role == "eval")
                lsh_shuffle.on_cluster(agg, parts, evals, address=ray_address)
            for file_no, (_, p) in enumerate(self.roles):
                if self.formats[p] in SHARDED and not self.per_file[file_no] and not self.errors[file_no]:
                    raise BadInput(f"{p}: contains no records")  # what iter_records says of a whole file
                for e in self.errors[file_no]:
                    agg._skip(e.source, e.index, e.message)
            files = [file_fingerprint(p, role, self.formats[p], self.per_file[i], len(self.errors[i]))
                     for i, (role, p) in enumerate(self.roles)]
        except (KeyboardInterrupt, ShardUnavailable):
            if self.checkpoint_path is not None and self.checkpoint_path.is_file():
                self.writer.close()  # kept for --resume, with the checkpoint
            else:
                self.writer.abort()
            raise
        except BaseException:
            self.writer.abort()
            checkpoint.discard(self.checkpoint_path)
            raise
        finally:
            bar.close()
        self.writer.finish()
        checkpoint.discard(self.checkpoint_path)
        return agg, files

    def _save(self) -> None:
        from ftaudit.data import checkpoint

        agg, self.agg.findings = self.agg.findings, None  # the open file stays out of the pickle
        try:
            checkpoint.save(self.checkpoint_path, checkpoint.State(
                version=checkpoint.VERSION, options=self.opts, inputs=self.inputs, jobs_done=self.done,
                bytes_done=self.bytes_done, aggregate=self.agg, per_file=self.per_file, errors=self.errors,
                findings_tmp=str(self.writer.tmp) if self.writer.tmp else None,
                findings_bytes=self.writer.position()))
        finally:
            self.agg.findings = agg


class Progress:
    """Rich progress on stderr for long scans (records; bytes, MB/s and time left where files are sharded); silent
    when disabled (--json, library use)."""

    def __init__(self, enabled: bool, *, total_bytes: int = 0, done_bytes: int = 0):
        self.p = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            columns = [SpinnerColumn(), TextColumn("{task.description}"),
                       TextColumn("{task.fields[records]:,} records")]
            if total_bytes:
                columns += [BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
            self.p = Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self.p.start()
            self.task = self.p.add_task("scanning", total=total_bytes or None, completed=done_bytes, records=0)
            self.records = 0

    def advance(self, records: int, nbytes: int, source: str) -> None:
        if self.p is not None:
            self.records += records
            self.p.update(self.task, advance=nbytes, records=self.records, description=f"scanning {Path(source).name}")

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()

