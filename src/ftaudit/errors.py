"""Errors that reach the user as one line and a documented exit code.

Exit codes (documented in the README; keep in sync):
  0  ok
  1  bad input: config, arguments, data or file that cannot be used as given
  2  runtime error: something failed while running (a model that cannot be loaded, an unreachable database)
  3  compute gate: the plan crosses a threshold of a role the organisation has not accepted; training not started
  4  compute gate mid-run: the metered compute reached the accepted threshold; checkpoint saved, training stopped
  5  data policy: the data policy blocked training (secrets, unreviewed special-category data)
  6  evaluation gate failed: model kept, marked as not approved
  7  verification failed: a ledger, run directory or bundle was modified
  8  run incomplete: the run directory's run stopped before its record stage (nothing to verify yet; resume it)
"""

OK = 0
BAD_INPUT = 1
RUNTIME = 2
COMPUTE_GATE_REFUSED = 3
COMPUTE_GATE_STOPPED = 4
DATA_POLICY_BLOCKED = 5
EVALUATION_GATE_FAILED = 6
VERIFICATION_FAILED = 7
RUN_INCOMPLETE = 8


class FtauditError(Exception):
    """An error with a one-line message for the user and an exit code."""

    exit_code = RUNTIME

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def first_line(exc: BaseException) -> str:
    """The first line of a library's error, for a one-line message of ours (tracebacks stay out)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else exc.__class__.__name__)[:300]


class BadInput(FtauditError):
    exit_code = BAD_INPUT


class RuntimeFailure(FtauditError):
    exit_code = RUNTIME


class ComputeGateRefused(FtauditError):
    exit_code = COMPUTE_GATE_REFUSED


class ComputeGateStopped(FtauditError):
    exit_code = COMPUTE_GATE_STOPPED


class DataPolicyBlocked(FtauditError):
    exit_code = DATA_POLICY_BLOCKED


class EvaluationGateFailed(FtauditError):
    exit_code = EVALUATION_GATE_FAILED


class VerificationFailed(FtauditError):
    exit_code = VERIFICATION_FAILED


class RunIncomplete(FtauditError):
    exit_code = RUN_INCOMPLETE
