"""ftaudit.evaluation: quality, bias, unexpected-output and memorisation probes, base vs tuned.

Public entry points (torch is imported lazily, inside them):
  evaluate_for_record(base, tuned, *, config=None, task_records=None, training_records=None, canaries=None, ...)
  insert_canaries(records, *, n_inserted=4, n_unseen=4, repeats=10, digits=9, seed=0) -> (records, CanaryManifest)
  raise_for_gates(evidence)  # EvaluationGateFailed, exit 6
"""

from ftaudit.evaluation.evidence import EvaluationEvidence

__all__ = ["EvaluationEvidence", "evaluate_for_record", "insert_canaries", "raise_for_gates"]


def __getattr__(name):
    if name == "evaluate_for_record":
        from ftaudit.evaluation.suite import evaluate_for_record

        return evaluate_for_record
    if name == "insert_canaries":
        from ftaudit.evaluation.memorisation import insert_canaries

        return insert_canaries
    if name == "raise_for_gates":
        from ftaudit.evaluation.gates import raise_for_gates

        return raise_for_gates
    raise AttributeError(name)
