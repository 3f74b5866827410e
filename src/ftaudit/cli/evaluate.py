"""`ftaudit evaluate`: base vs tuned model on the quality, bias, unexpected-output and memorisation suites.

Exit codes: 0 ok (gates passed or none configured); 1 bad input (arguments, config, data, an adapter that does not
fit the base, an empty suite, a task metric without references); 2 a model that cannot be loaded or a runtime
failure; 6 an evaluation gate failed (the evidence is still written, with approved = false).
"""

from __future__ import annotations

SUITE_HELP = "comma-separated: quality,bias,unexpected,memorisation (default: all that the inputs allow)"


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate base vs tuned model: quality, bias, unexpected outputs, memorisation",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--base", required=True, help="base model: directory, .gguf file, or cached hub id")
    p.add_argument("--tuned", required=True, help="tuned model directory, or a PEFT adapter directory for --base")
    p.add_argument("--suite", help=SUITE_HELP)
    p.add_argument("--task-data", metavar="PATH", help="held-out task records (JSONL: prompt, completion)")
    p.add_argument(
        "--training-data", metavar="PATH", help="training records (JSONL) for the personal-data extraction test"
    )
    p.add_argument("--canaries", metavar="PATH", help="canary manifest written at training time (JSON)")
    p.add_argument(
        "--config",
        metavar="RUN_YAML",
        help="run config; its `evaluation:` section sets suites, decoding, limits, gates",
    )
    p.add_argument(
        "--prompt-format", choices=["raw", "chat"], help="raw prompt text (default) or the tokenizer's chat template"
    )
    p.add_argument("--max-new-tokens", type=int, help="generation cap for free-form probes")
    p.add_argument("--batch-size", type=int, help="rows per forward pass")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="weights dtype (default float32)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--json", action="store_true", help="print the evidence as JSON instead of a summary")
    p.add_argument("-o", "--output", metavar="OUT", help="write the evidence JSON here (atomically)")
    p.set_defaults(handler=run)


def _load_config(args):
    from ftaudit.errors import BadInput
    from ftaudit.evaluation.gates import parse_config

    raw: dict = {}
    if args.config:
        from ftaudit.io import read_yaml

        doc = read_yaml(args.config, "run config") or {}
        if not isinstance(doc, dict):
            raise BadInput(f"config {args.config}: expected a mapping at the top level")
        raw = dict(doc.get("evaluation") or {})
        raw.pop("canaries", None)  # insertion settings: used by `ftaudit train`, not here
    if args.suite is not None:
        raw["suites"] = [s.strip() for s in args.suite.split(",") if s.strip()]
    elif "suites" not in raw:
        raw["suites"] = ["quality", "bias", "unexpected"] + (
            ["memorisation"] if (args.training_data or args.canaries) else []
        )
    decoding = dict(raw.get("decoding") or {})
    for key, value in (
        ("prompt_format", args.prompt_format),
        ("max_new_tokens", args.max_new_tokens),
        ("batch_size", args.batch_size),
    ):
        if value is not None:
            decoding[key] = value
    raw["decoding"] = decoding
    return parse_config(raw, where=f"config {args.config}" if args.config else "evaluation settings")


def _load_canaries(path):
    from pydantic import ValidationError

    from ftaudit.errors import BadInput, first_line
    from ftaudit.evaluation.memorisation import CanaryManifest

    try:
        return CanaryManifest.model_validate_json(open(path, encoding="utf-8").read())
    except FileNotFoundError:
        raise BadInput(f"canaries {path}: no such file") from None
    except (OSError, ValidationError, ValueError) as exc:
        raise BadInput(f"canaries {path}: not a canary manifest written by ftaudit ({first_line(exc)})") from None


def run(args) -> int:
    from ftaudit.errors import BadInput

    config = _load_config(args)  # all argument and config errors surface before any model is loaded
    from ftaudit.evaluation.probesets import read_jsonl

    task = read_jsonl(args.task_data, what="task data") if args.task_data else None
    training = read_jsonl(args.training_data, what="training data") if args.training_data else None
    canaries = _load_canaries(args.canaries) if args.canaries else None
    if "memorisation" in config.suites and not (training or canaries):
        raise BadInput("suite memorisation needs --canaries and/or --training-data")
    if task and "quality" in config.suites:
        from ftaudit.evaluation.suite import validate_task_records

        validate_task_records(task[0], config.limits.task_items)
    if (
        args.batch_size is not None
        and args.batch_size < 1
        or args.max_new_tokens is not None
        and args.max_new_tokens < 1
    ):
        raise BadInput("--batch-size and --max-new-tokens must be at least 1")

    from ftaudit.evaluation.gates import raise_for_gates
    from ftaudit.evaluation.models import load_pair
    from ftaudit.evaluation.report import summary_text
    from ftaudit.evaluation.suite import EvaluationInputs, evaluate_models
    from ftaudit.io import atomic_write_text

    base, tuned = load_pair(args.base, args.tuned, dtype=args.dtype, device=args.device)
    inputs = EvaluationInputs(
        task_records=task[0] if task else None,
        task_source=args.task_data,
        training_records=training[0] if training else None,
        training_source=args.training_data,
        canaries=canaries,
        canaries_source=args.canaries,
    )
    evidence = evaluate_models(base, tuned, inputs, config)
    text = evidence.model_dump_json(indent=2) + "\n"
    if args.output:
        atomic_write_text(args.output, text)
    print(text if args.json else summary_text(evidence), end="" if args.json else "\n")
    raise_for_gates(evidence)
    return 0
