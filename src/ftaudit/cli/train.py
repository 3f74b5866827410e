"""`ftaudit train` (the main job) and `ftaudit sagemaker` (launch it as a SageMaker training job).

Exit codes: 0 ok, 1 config/bad input, 2 runtime error, 3 compute gate refused (nothing trained), 4 compute gate
stopped the run (checkpoint saved), 5 data policy blocked, 6 evaluation gate failed.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("train", help="fine-tune from a YAML run config and write its evidence (the main job)",
                       description="preflight → train → evaluate → document → record. Runs the same under "
                                   "torchrun and accelerate launch. Exit codes: 0 ok, 1 bad config/input, "
                                   "2 runtime error, 3 compute gate refused, 4 compute gate stopped the run, "
                                   "5 data policy blocked, 6 evaluation gate failed.")
    p.add_argument("config", nargs="?", help="run config (YAML); see --help-config")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.add_argument("-o", "--output-dir", help="run directory (overrides output_dir in the config)")
    p.add_argument("--parent", metavar="DIR", help="continue the lineage (and the adapter) of an earlier run's "
                   "model dir (overrides parent in the config)")
    p.add_argument("--plan", action="store_true", help="preflight only: validate, estimate, decide; write nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout; no progress output")
    p.add_argument("--help-config", action="store_true", help="list every config field with its meaning")
    p.set_defaults(handler=run_train)

    s = sub.add_parser("sagemaker", help="run ftaudit train as an Amazon SageMaker training job")
    ssub = s.add_subparsers(dest="sagemaker_command", metavar="SAGEMAKER_COMMAND", parser_class=type(s))
    launch = ssub.add_parser(
        "launch", help="build the training-job request with the sagemaker SDK; submit it unless --dry-run")
    launch.add_argument("config", help="run config (YAML)")
    launch.add_argument("--role", help="IAM role ARN for the job (or FTAUDIT_SAGEMAKER_ROLE)")
    launch.add_argument("--image-uri", help="training image with ftaudit installed (or FTAUDIT_SAGEMAKER_IMAGE)")
    launch.add_argument("--instance-type", default="ml.g5.2xlarge")
    launch.add_argument("--instance-count", type=int, default=1)
    launch.add_argument("--s3-output", help="s3://bucket/prefix for the model and evidence")
    launch.add_argument("--job-name", help="training job name (default: <config name>-<timestamp>)")
    launch.add_argument("--max-run", type=int, default=24 * 3600, help="max runtime in seconds")
    launch.add_argument("--volume-gb", type=int, default=100, help="EBS volume per instance (GB)")
    launch.add_argument("--spot", action="store_true",
                        help="managed spot training (the run resumes after interruption)")
    launch.add_argument("--max-wait", type=int, default=None,
                        help="spot: max seconds to wait + run (default --max-run)")
    launch.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    launch.add_argument("--dry-run", action="store_true", help="print the request; submit nothing")
    launch.set_defaults(handler=run_sagemaker_launch)
    entry = ssub.add_parser("entry", help="the entry point inside the SageMaker container (reads /opt/ml)")
    entry.add_argument("--root", default=None, help="the /opt/ml root (tests use a fake tree)")
    entry.set_defaults(handler=run_sagemaker_entry)


def _summary_lines(result) -> list[tuple[str, str]]:
    from ftaudit.regulation.figures import flops2

    rec = result.record
    d = rec.decision
    c = rec.compute
    used = c.regulatory_flops if c and c.regulatory_flops is not None else None
    lin = c.lineage.cumulative_flops if c and c.lineage else None
    lines = [("run dir", str(result.run_dir)), ("status", rec.status)]
    if used is not None:
        lines.append(("compute (this run)", f"{flops2(used)} FLOP, metered (architecture-based, guidelines Annex A.2)"))
    if lin is not None:
        lines.append(("lineage total", f"{flops2(lin)} FLOP"))
    if d is not None:
        lines.append(("threshold", f"{flops2(d.threshold_flops)} FLOP — {d.threshold_basis} ({d.citation})"))
        lines.append(("used", f"{1 - d.headroom_fraction:.2g} of the threshold ({flops2(d.modification_flops)} of "
                              f"{flops2(d.threshold_flops)} FLOP)"))
        lines.append(("role", f"{d.role} (accepted: {d.accepted_role})"))
        lines += _readings(d)
    ev = rec.evaluation
    measured = {m.metric: m for fam in (ev.families if ev is not None else []) for m in fam.metrics}
    for name, label in SUMMARY_METRICS.items():
        m = measured.get(name)
        if m is not None:
            base = f"{m.base.value:.2f}" if m.base is not None and m.base.value is not None else "n/a"
            tuned = f"{m.tuned.value:.2f}" if m.tuned.value is not None else "n/a"
            lines.append((label, f"base {base} → tuned {tuned} (n={m.tuned.n}; {name})"))
    if ev is not None and ev.gates:
        lines.append(("evaluation gates", "all passed" if ev.approved else "failed: the model is not approved"))
    for s in rec.stages:
        secs = f" ({(s.finished_at - s.started_at).total_seconds():.0f} s)" if s.started_at and s.finished_at else ""
        lines.append((f"stage {s.name}", s.status + secs + (f": {s.reason}" if s.reason else "")))
    lines.append(("evidence", f"{result.run_dir}/run_record.json, ftaudit_meter.json, flops_meter.json"))
    return lines


# One or more headline figures per evaluation family (all of them are in the record and the documents).
SUMMARY_METRICS = {
    "quality.task.exact_match": "exact_match", "quality.task.json_validity": "json_validity",
    "quality.task.field_accuracy": "field_accuracy",
    "bias.likelihood.max_gap": "bias gap, likelihood", "bias.generation.sentiment_max_gap": "bias gap, sentiment",
    "unexpected.personal_data.rate": "personal data out", "unexpected.toxicity.rate": "toxic outputs",
    "unexpected.harmful.compliance_rate": "harmful complied",
    "memorisation.canary.detected_rate": "canaries memorised", "memorisation.extraction.rate": "training PII extracted",
}


def run_train(args) -> int:
    from ftaudit.pipeline.config import field_docs
    from ftaudit.regulation.figures import flops2

    if args.help_config:
        for name, doc in field_docs():
            print(f"{name:<42} {doc}")
        return 0
    from contextlib import nullcontext

    from ftaudit.pipeline.run import execute, prepare
    from ftaudit.pipeline.ui import stdout_json, stdout_to_stderr

    with stdout_to_stderr() if args.json else nullcontext():  # stdout: the one JSON object, nothing else
        run = prepare(args.config, resume=args.resume, output_dir=args.output_dir, parent=args.parent,
                      quiet=args.json)
        result = execute(run, plan_only=args.plan)
    if args.plan:
        d = run.planned_decision
        if args.json:
            stdout_json({"plan": result.plan.model_dump(mode="json"), "decision": d.model_dump(mode="json"),
                         "warnings": run.warnings})
        else:
            p = result.plan
            run.ui.summary([("plan", f"{p.optimizer_steps} steps, {p.planned_tokens_executed:,} tokens executed "
                                     f"({p.planned_tokens_effective:,} non-padding)"),
                            ("planned compute", f"{flops2(p.planned_flops)} FLOP ({p.method})"),
                            *([("objective", f"{p.objective}: " + ", ".join(
                                f"{role} {flops2(v)} FLOP" for role, v in p.breakdown.items()))]
                              if p.objective != "sft" else []),
                            ("lineage total", f"{flops2(p.lineage_total_flops)} FLOP"),
                            ("threshold", f"{flops2(d.threshold_flops)} FLOP ({d.citation})"),
                            ("role", f"{d.role} (accepted: {d.accepted_role})"),
                            *_readings(d),
                            ("note", result.message)])
        return 0
    if run.is_main:
        if args.json:
            stdout_json({"run_dir": str(result.run_dir), "exit_code": result.exit_code, "message": result.message,
                         "timings_seconds": result.timings, "record": result.record.model_dump(mode="json")})
        else:
            run.ui.summary(_summary_lines(result))
    if result.exit_code:
        import sys

        print(f"ftaudit: error: {result.message}", file=sys.stderr)
    elif result.message and run.is_main and not args.json:
        run.ui.info(result.message)
    if not run.is_main:
        # A worker rank has nothing left to write: it skips the interpreter's native teardown, where DeepSpeed's
        # threads have aborted ("terminate called without an active exception") and made the launcher fail the job.
        import os
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(result.exit_code)
    return result.exit_code


def run_sagemaker_launch(args) -> int:
    from ftaudit.integrations.sagemaker import launch

    return launch(args.config, role=args.role, image_uri=args.image_uri, s3_output=args.s3_output, region=args.region,
                  dry_run=args.dry_run, instance_type=args.instance_type, instance_count=args.instance_count,
                  job_name=args.job_name, max_run=args.max_run, volume_gb=args.volume_gb, spot=args.spot,
                  max_wait=args.max_wait)


def run_sagemaker_entry(args) -> int:
    from ftaudit.integrations.sagemaker import entry_point

    return entry_point(root=args.root)


def _readings(d) -> list[tuple[str, str]]:
    """The other reading of a base below 1e23, and disagreeing estimates of the original, as summary lines."""
    from ftaudit.regulation.figures import flops2

    lines = []
    if d.alternative is not None:
        a = d.alternative
        lines.append(("other reading", f"if the base were {'' if a.base_is_gpai else 'not '}a GPAI model: "
                                       f"{flops2(a.threshold_flops)} FLOP — {a.threshold_basis} → {a.role}"))
    if d.estimates_disagree:
        lines.append(("estimates", "; ".join(f"{o.method} {flops2(o.original_flops)} → {o.role}" for o in d.estimates)
                      + f" (decided by {d.estimate_used})"))
    return lines

