"""`ftaudit data scan`: one pass over the data, all cores (or a Ray cluster), everything a data report needs.

Workers (`scan_worker`) do the CPU work per record: detection, MinHash signature, language, lengths, tokens,
garbled check, domains, bias counts and the record hash; JSONL and text files go to them as byte-range shards they
read themselves, other formats as batches this process reads. The main process (`scan_run`) folds the results in
order into the aggregate (`scan_aggregate`: the record digest, the duplicate index, sequential by nature and
cheap, counts and distributions), and `scan_evidence` turns it into `DataEvidence`. Eval files (`--eval`) pass
through the same workers in a light mode (hash, signature, lengths) and are checked against the training index
for leakage.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ftaudit.data import tdm as tdm_mod
from ftaudit.data.datasheet import Datasheet, load_datasheet
from ftaudit.data.evidence import (
    DataEvidence,
    DetectionInfo,
)
from ftaudit.data.scan_aggregate import classify, path_sha256  # noqa: F401 (re-exported)
from ftaudit.data.scan_evidence import build_evidence, ner_sample_evidence
from ftaudit.data.scan_worker import (  # noqa: F401 (ScanOptions, ShardUnavailable, in_ner_sample re-exported)
    SPECIAL_PREFIX,
    BatchOut,
    RecordOut,
    ScanOptions,
    ShardUnavailable,
    in_ner_sample,
)
from ftaudit.errors import BadInput
from ftaudit.io import sha256_file


def detection_info(ner: bool | None, model: str | None = None) -> DetectionInfo:
    from ftaudit.data import pii
    from ftaudit.data.patterns.recognizers import PHONE_BACKEND

    phones = f" {PHONE_BACKEND[0].upper()}{PHONE_BACKEND[1:]}."
    detectors = ["patterns", "secrets", "special-category lexicon",
                 "phonenumbers" if "libphonenumber" in PHONE_BACKEND else "phone-layout-heuristic"]
    ok = pii._resolve_ner(ner, model)  # raises for NER required or a model named that cannot run, or NER off
    if ner is False:
        return DetectionInfo(ner_available=False, detectors=detectors,
                             note="NER switched off for this scan (--no-ner): PERSON, LOCATION and NRP were not "
                                  "detected; only pattern-based types were." + phones)
    note = pii.ner_available(model)[1]
    long_text = pii.NER_LONG_TEXT_NOTE
    ner_detector = "transformer-ner" if model else "spacy-ner"
    return DetectionInfo(ner_available=ok, note=(f"{note} {long_text[0].upper()}{long_text[1:]}." if ok else note)
                         + phones, detectors=detectors + ([ner_detector] if ok else []))


def scan(
    paths: Iterable[str | os.PathLike],
    *,
    eval_paths: Iterable[str | os.PathLike] = (),
    datasheet: str | os.PathLike | Datasheet | None = None,
    policy: Any = None,
    options: ScanOptions | None = None,
    findings_path: str | os.PathLike | None = None,
    progress: bool = False,
    tdm: str | os.PathLike | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    resume: bool = False,
    checkpoint_seconds: float = 30.0,
    engine: str = "local",
    ray_address: str | None = None,
    lsh: str = "driver",
) -> DataEvidence:
    """Scan training files (and eval files for leakage); return the evidence. Never raises for a policy block:
    the verdict is in `evidence.policy` (see `policy.enforce`). `tdm`: saved TDM reservations of the source domains
    (`ftaudit.data.tdm`), checked against every domain of the training data. `checkpoint_path`: where the state
    is saved every `checkpoint_seconds` (after a folded shard), so that `resume=True` continues an interrupted scan
    and gives the report an uninterrupted one gives. `engine="ray"`: the same jobs through Ray Data on the cluster at
    `ray_address` (`ftaudit.data.ray_engine`), the same report; with `lsh="cluster"` also the duplicate and leak
    search, band keys grouped across the cluster (`ftaudit.data.lsh_shuffle`; not resumable)."""
    from ftaudit.data.loading import count_records, data_files, detect_format
    from ftaudit.data.policy import evaluate, load_policy

    opts = options or ScanOptions()
    train = [f for p in paths for f in data_files(p)]
    evals = [f for p in eval_paths for f in data_files(p)]
    if not train:
        raise BadInput("no data to scan: pass one or more files")
    if opts.workers < 1:
        raise BadInput(f"--workers must be at least 1, not {opts.workers}")
    if opts.on_error not in ("stop", "skip"):
        raise BadInput(f"--on-error must be 'stop' or 'skip', not {opts.on_error!r}")
    if not 0 < opts.near_duplicate_threshold <= 1:
        raise BadInput("the near-duplicate threshold must be in (0, 1]")
    if engine not in ("local", "ray"):
        raise BadInput(f"--engine must be 'local' or 'ray', not {engine!r}")
    if lsh not in ("driver", "cluster") or (lsh == "cluster" and engine != "ray"):
        raise BadInput(f"--lsh must be 'driver', or 'cluster' with --engine ray, not {lsh!r} with --engine {engine}")
    if lsh == "cluster" and resume:
        raise BadInput("--resume cannot continue a scan with --lsh cluster (its duplicate index lived on the "
                       "cluster); run it again without --resume")
    formats = {p: detect_format(p) for p in train + evals}  # unknown types fail before any work
    for p in train + evals:
        if not p.exists():
            raise BadInput(f"{p}: no such file or directory")
    sheet = load_datasheet(datasheet) if isinstance(datasheet, (str, os.PathLike)) else datasheet
    sheet_sha = sha256_file(datasheet)[0] if isinstance(datasheet, (str, os.PathLike)) else None
    the_policy = load_policy(policy)
    if tdm is not None:
        tdm_mod.check_source(tdm)
    if opts.ner_sample is not None:
        if opts.ner is False or opts.ner_sample < 1:
            raise BadInput("--ner sample:N needs N >= 1 and NER switched on")
        opts = dataclasses.replace(opts, ner=True,
                                   ner_rate=min(1.0, opts.ner_sample / max(1, sum(count_records(p) for p in train))))
    info = detection_info(opts.ner, opts.ner_model) if opts.detect else None
    roles = [("train", p) for p in train] + [("eval", p) for p in evals]
    from ftaudit.data.scan_run import ScanRun

    run = ScanRun(opts, roles, formats, findings_path, Path(checkpoint_path) if checkpoint_path else None, resume,
               checkpoint_seconds)
    agg, files = run.fold(progress, engine, ray_address, lsh)
    if info is not None and opts.ner_rate is not None:
        info.ner_sample = ner_sample_evidence(agg, opts)
        info.note += (f" NER read a seeded uniform sample of {agg.ner_records:,} of {agg.counts.records:,} records "
                      f"(rate {opts.ner_rate:.4g}, seed {opts.ner_seed}); PERSON, LOCATION and NRP counts cover that "
                      "sample only, and their rates are estimated with 95 % intervals.")
    evidence = build_evidence(agg, opts, files, sheet, sheet_sha, info, bool(evals))
    if tdm is not None:
        evidence.tdm = tdm_mod.check([(r.domain, r.records) for r in agg.domains.ranked()], tdm)
    evidence.policy = evaluate(evidence, the_policy)
    return evidence


def scan_for_record(paths: Iterable[str | os.PathLike], **kwargs) -> DataEvidence:
    """What the pipeline's preflight calls: the evidence for `RunRecord.data`, policy verdict included.

    kwargs as for `scan` (eval_paths, datasheet, policy, options, findings_path, tdm). The caller decides whether to
    stop: `ftaudit.data.policy.enforce(evidence.policy)` raises DataPolicyBlocked (exit 5)."""
    kwargs.setdefault("progress", False)
    return scan(paths, **kwargs)

