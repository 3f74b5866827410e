"""Near-duplicate and leakage detection as a shuffle across a cluster, for data whose LSH index does not fit the
driver (`ftaudit data scan --engine ray --lsh cluster`). The same answers as the driver's streaming index
(`quality.NearDuplicateIndex`), found by grouping instead of by lookups:

  split    each scan task cuts what its records need into 2 × P partitions: exact keys by key, band keys (with
           the records' signatures) by band; the partitions stay on the cluster
  exact    per key: the earliest training record holds it; later training records repeat it exactly, eval
           records with it are exact leaks
  near     per (band, band key) bucket: each record that is neither is compared with the earlier training records
           of the bucket that are not repeats (all of them, for an eval record); pairs at or above the threshold
           come back with the band they share
  replay   the driver hands the outcomes, in record order and with each record's pairs in the index's order (first
           shared band, then earlier record first), to the same `DuplicateFinder` and leak count the index feeds

Records are item ids (file number << 40 | record index), so "earlier" is a comparison of ids. The driver keeps
only outcomes (repeats and pairs), never a signature.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ftaudit.data.quality import Pair, similarity
from ftaudit.data.scan_worker import ID_SHIFT, run_job


@dataclass
class KeyPart:
    entries: list[tuple[bytes, int, bool]] = field(default_factory=list)  # (exact key, item, is eval)


@dataclass
class BandPart:
    entries: list[tuple[int, bytes, int, bool]] = field(default_factory=list)  # (band, band key, item, is eval)
    sigs: dict[int, np.ndarray] = field(default_factory=dict)


def split(records: Iterable[tuple[int, bool, bytes, np.ndarray | None]], bands: int,
          partitions: int) -> list[KeyPart | BandPart]:
    """One task's records (item, is eval, exact key, signature or None) as P key parts, then P band parts."""
    keys = [KeyPart() for _ in range(partitions)]
    parts = [BandPart() for _ in range(partitions)]
    for item, is_eval, key, sig in records:
        keys[zlib.crc32(key) % partitions].entries.append((key, item, is_eval))
        if sig is None:
            continue
        raw = sig.tobytes()
        step = len(raw) // bands
        for band in range(bands):
            band_key = raw[band * step:(band + 1) * step]
            part = parts[zlib.crc32(band_key, band) % partitions]
            part.entries.append((band, band_key, item, is_eval))
            part.sigs[item] = sig
    return [*keys, *parts]


def exact(*parts: KeyPart) -> tuple[dict[int, int], dict[int, int]]:
    """({training record: the earlier one it repeats}, {eval record: the training record it repeats})."""
    groups: dict[bytes, list[tuple[int, bool]]] = defaultdict(list)
    for part in parts:
        for key, item, is_eval in part.entries:
            groups[key].append((item, is_eval))
    repeats: dict[int, int] = {}
    leaks: dict[int, int] = {}
    for members in groups.values():
        train = sorted(item for item, is_eval in members if not is_eval)
        if not train:
            continue
        repeats.update((item, train[0]) for item in train[1:])
        leaks.update((item, train[0]) for item, is_eval in members if is_eval)
    return repeats, leaks


def near(threshold: float, settled: frozenset[int], *parts: BandPart) -> dict[int, dict[int, tuple[int, float]]]:
    """{record: {earlier training record: (first shared band, similarity)}} for the pairs at or above the
    threshold; `settled`: the records found to repeat one exactly (neither compared nor compared with)."""
    buckets: dict[tuple[int, bytes], list[tuple[int, bool]]] = defaultdict(list)
    sigs: dict[int, np.ndarray] = {}
    for part in parts:
        sigs.update(part.sigs)
        for band, band_key, item, is_eval in part.entries:
            if item not in settled:
                buckets[band, band_key].append((item, is_eval))
    found: dict[int, dict[int, tuple[int, float]]] = defaultdict(dict)
    for (band, _), members in buckets.items():
        if len(members) < 2:
            continue
        train = sorted(item for item, is_eval in members if not is_eval)
        for item, is_eval in members:
            for other in train:
                if not is_eval and other >= item:
                    break
                had = found[item].get(other)
                if had is not None and had[0] <= band:
                    continue
                sim = had[1] if had is not None else similarity(sigs[item], sigs[other])
                if sim >= threshold:
                    found[item][other] = (band, sim)
    return {item: pairs for item, pairs in found.items() if pairs}


def merge_near(results: Iterable[dict[int, dict[int, tuple[int, float]]]]) -> dict[int, list[Pair]]:
    """The partitions' pairs as each record's list in the index's order: by first shared band, then by record."""
    merged: dict[int, dict[int, tuple[int, float]]] = defaultdict(dict)
    for result in results:
        for item, pairs in result.items():
            mine = merged[item]
            for other, (band, sim) in pairs.items():
                if other not in mine or band < mine[other][0]:
                    mine[other] = (band, sim)
    def order(pair):  # (earlier record, (first shared band, similarity))
        return pair[1][0], pair[0]

    return {item: [Pair(other, item, sim) for other, (_, sim) in sorted(pairs.items(), key=order)]
            for item, pairs in merged.items()}


def replay(agg, repeats: dict[int, int], leaks: dict[int, int], pairs: dict[int, list[Pair]],
           eval_files: frozenset[int]) -> None:
    """The outcomes into the aggregate, in record order, as its own index would have given them."""
    for item in sorted(repeats.keys() | leaks.keys() | pairs.keys()):
        if item >> ID_SHIFT in eval_files:
            source, index = agg.source_of(item)
            agg.leak(source, index, leaks.get(item), pairs.get(item, []))
        else:
            agg.dups.note(item, repeats.get(item), pairs.get(item, []))


def run_and_split(job, partitions: int) -> tuple:
    """A scan task whose records' keys and signatures stay on the cluster: (the results without them, the 2 × P
    parts)."""
    role, file_no, out, nbytes = run_job(job)
    records = []
    for r in out.records:
        if r.skipped is None and r.flag != "empty":  # empty records are not duplicates of each other
            records.append(((file_no << ID_SHIFT) | r.index, role == "eval", r.key, r.sig))
        r.key, r.sig = b"", None
    return ((role, file_no, out, nbytes), *split(records, job.opts.bands, partitions))


def on_cluster(agg, task_parts: list[list], eval_files: frozenset[int], *, address: str | None) -> None:
    """The exact and near stages as Ray tasks over the scan tasks' parts, their outcomes replayed into `agg`."""
    from ftaudit.data import ray_engine

    if not task_parts:
        return
    p = len(task_parts[0]) // 2
    found = ray_engine.run_all(exact, [tuple(parts[i] for parts in task_parts) for i in range(p)], address=address)
    repeats = {k: v for r, _ in found for k, v in r.items()}
    leaks = {k: v for _, r in found for k, v in r.items()}
    settled = ray_engine.put(frozenset(repeats.keys() | leaks.keys()), address=address)
    threshold = agg.opts.near_duplicate_threshold
    pairs = merge_near(ray_engine.run_all(
        near, [(threshold, settled, *(parts[p + i] for parts in task_parts)) for i in range(p)], address=address))
    replay(agg, repeats, leaks, pairs, eval_files)
