"""Training examples: read the configured JSONL files, check their fields, tokenise them for causal-LM training.

Each record becomes segments of text, each marked trainable or not; `completion_only_loss` masks the prompt
(labels -100) so the loss is on what the model should produce. The token lengths computed here are also what the
preflight's compute estimate uses, so the plan is counted on the actual tokenised data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ftaudit.data.loading import describe_fields
from ftaudit.errors import BadInput
from ftaudit.pipeline.config import DatasetSpec, RunConfig


@dataclass
class Example:
    segments: list[tuple[str, bool]]  # (text, trainable) — with chat templates, formatting is applied later
    messages: list[dict] | None = None
    prompt: str | None = None
    completion: str | None = None
    rejected: str | None = None  # preference records: `completion` is the chosen one


@dataclass
class TokenizedSet:
    input_ids: list[list[int]] = field(default_factory=list)
    labels: list[list[int]] = field(default_factory=list)
    n_truncated: int = 0
    n_no_target: int = 0  # records whose trainable part was cut off entirely by max_seq_len
    examples: list[Example] = field(default_factory=list)  # dpo, grpo: the records, for TRL to format itself

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]

    def __len__(self) -> int:
        return len(self.input_ids)


def _records(path: Path):
    """Records of one file via the data module's loader (one line per bad record, never its content)."""
    from ftaudit.data.loading import iter_records

    for rec in iter_records(path):
        yield rec.index, rec.data


def _detect(spec: DatasetSpec, first: dict) -> str:
    if spec.format:
        return spec.format
    if spec.messages_field in first:
        return "messages"
    if all(k in first for k in (spec.prompt_field, spec.chosen_field, spec.rejected_field)):
        return "preference"
    if spec.prompt_field in first and spec.completion_field in first:
        return "prompt_completion"
    if spec.text_field in first:
        return "text"
    raise BadInput(f"dataset {spec.path}: cannot tell the record format from its fields ({describe_fields(first)}); "
                   "set format and the *_field names in the config")


def _need(rec: dict, key: str, where: str, kind: type = str):
    if key not in rec:
        raise BadInput(f"{where}: no field {key!r} (fields present: {describe_fields(rec)}); "
                       "fix the dataset or set the *_field name in the config")
    value = rec[key]
    if not isinstance(value, kind):
        raise BadInput(f"{where}: field {key!r} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def _example(spec: DatasetSpec, fmt: str, rec: dict, where: str) -> Example:
    if fmt == "preference":
        p, c, r = (_need(rec, k, where) for k in (spec.prompt_field, spec.chosen_field, spec.rejected_field))
        return Example([(p, False), (c, True)], prompt=p, completion=c, rejected=r)
    if fmt == "prompt_completion":
        p, c = _need(rec, spec.prompt_field, where), _need(rec, spec.completion_field, where)
        return Example([(p, False), (c, True)], prompt=p, completion=c)
    if fmt == "messages":
        msgs = _need(rec, spec.messages_field, where, list)
        if not all(isinstance(m, dict) and isinstance(m.get("content"), str) and "role" in m for m in msgs):
            raise BadInput(f"{where}: {spec.messages_field!r} must be a list of {{role, content}} objects")
        return Example([(f"{m['role']}: {m['content']}\n", m["role"] == "assistant") for m in msgs], messages=msgs)
    return Example([(_need(rec, spec.text_field, where), True)])


# What each objective trains on (the trainer formats the records itself for dpo and grpo).
OBJECTIVE_FORMATS = {"dpo": ("preference",), "grpo": ("prompt_completion",)}


def load_examples(cfg: RunConfig, specs: list[DatasetSpec], records_hook=None) -> list[Example]:
    """Every record of every file, checked and turned into an Example.

    `records_hook(list[dict]) -> list[dict]` may rewrite one file's records before conversion (the evaluation's
    canary insertion uses it on the first training file)."""
    out: list[Example] = []
    for n_spec, spec in enumerate(specs):
        path = cfg.resolve(spec.path)
        rows = [(index, rec) for index, rec in _records(path)]
        if not rows:
            raise BadInput(f"dataset {path} contains no records")
        fmt = _detect(spec, rows[0][1])
        wanted = OBJECTIVE_FORMATS.get(cfg.training.objective)
        if wanted and specs is cfg.datasets and fmt not in wanted:
            raise BadInput(f"dataset {path}: objective {cfg.training.objective} trains on {' or '.join(wanted)} "
                           f"records, this one is {fmt}; " + ("give prompt, chosen and rejected fields"
                                                              if cfg.training.objective == "dpo" else
                                                              "give prompt and completion (the reward's reference)"))
        if records_hook is not None and n_spec == 0:
            for index, rec in rows:  # check the user's records first: errors must name their lines
                _example(spec, fmt, rec, f"{path}: record {index}")
            rows = [(-1, rec) for rec in records_hook([rec for _, rec in rows])]
        for index, rec in rows:
            out.append(_example(spec, fmt, rec, f"{path}: record {index}" if index >= 0 else f"{path} (+canaries)"))
    return out


def _chat_segments(tok, ex: Example) -> list[tuple[str, bool]] | None:
    """Segments rendered with the tokenizer's chat template; None when it has none."""
    if not getattr(tok, "chat_template", None):
        return None
    msgs = ex.messages or ([{"role": "user", "content": ex.prompt}, {"role": "assistant", "content": ex.completion}]
                           if ex.prompt is not None else None)
    if msgs is None:
        return None
    segments: list[tuple[str, bool]] = []
    done = ""
    for i, m in enumerate(msgs):
        if m["role"] == "assistant":
            # what precedes the answer, including the generation prompt ("<|im_start|>assistant\n")
            before = tok.apply_chat_template(msgs[:i], add_generation_prompt=True, tokenize=False)
        else:
            before = None
        upto = tok.apply_chat_template(msgs[: i + 1], tokenize=False)
        if before is not None and before.startswith(done) and upto.startswith(before):
            segments += [(before[len(done):], False), (upto[len(before):], True)]
        elif upto.startswith(done):
            segments.append((upto[len(done):], False))
        else:  # a template that rewrites earlier turns: fall back to plain formatting
            return None
        done = upto
    return [(t, trainable) for t, trainable in segments if t]


def prompt_ids(tok, prompt: str, cfg: RunConfig) -> list[int]:
    """The prompt as generation sees it: the chat template with the generation prompt, when there is one."""
    if cfg.training.use_chat_template and getattr(tok, "chat_template", None):
        return list(tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            tokenize=True, return_dict=False))
    return tok(prompt)["input_ids"]


def tokenize(tok, examples: list[Example], cfg: RunConfig) -> TokenizedSet:
    """Token ids and labels of what the policy trains on: sft the records; dpo the chosen and the rejected
    sequence of each record (in that order); grpo the prompts (the completions are sampled in training)."""
    objective = cfg.training.objective
    if objective == "grpo":
        ids = [prompt_ids(tok, ex.prompt, cfg)[-cfg.training.max_seq_len:] for ex in examples]
        return TokenizedSet(input_ids=ids, labels=[list(x) for x in ids], examples=examples)
    if objective == "dpo":
        pairs = [Example([(ex.prompt, False), (answer, True)], prompt=ex.prompt, completion=answer)
                 for ex in examples for answer in (ex.completion, ex.rejected)]
        out = _tokenize(tok, pairs, cfg)
        out.examples = examples
        return out
    return _tokenize(tok, examples, cfg)


def _tokenize(tok, examples: list[Example], cfg: RunConfig) -> TokenizedSet:
    t = cfg.training
    out = TokenizedSet()
    eos = tok.eos_token or ""
    for ex in examples:
        segs = _chat_segments(tok, ex) if t.use_chat_template else None
        special = segs is None
        if segs is None:
            segs = list(ex.segments)
            segs[-1] = (segs[-1][0] + eos, segs[-1][1])
        ids: list[int] = []
        labels: list[int] = []
        for i, (text, trainable) in enumerate(segs):
            piece = tok(text, add_special_tokens=special and i == 0)["input_ids"]
            ids += piece
            keep = trainable or not t.completion_only_loss
            labels += piece if keep else [-100] * len(piece)
        if len(ids) > t.max_seq_len:
            out.n_truncated += 1
            ids, labels = ids[: t.max_seq_len], labels[: t.max_seq_len]
        if all(x == -100 for x in labels):
            out.n_no_target += 1
        out.input_ids.append(ids)
        out.labels.append(labels)
    return out


