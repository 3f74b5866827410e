"""Errors that reach the user as one line and a documented exit code.

EXIT_CODES is the one table of exit codes: `ftaudit --help` prints it and the README's table is generated from it
(`python -m ftaudit.errors`; tests/test_readme.py checks that they agree).
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
NOT_APPROVED = 9
INTERRUPTED = 130

EXIT_CODES: dict[int, str] = {
    OK: "ok",
    BAD_INPUT: "bad input: a config, argument, data file or path that cannot be used as given (one line says what "
               "and how to fix it)",
    RUNTIME: "runtime error: a model that cannot be loaded, an unreachable database, a failed training step",
    COMPUTE_GATE_REFUSED: "compute gate: the planned run crosses the threshold of a role the organisation has not "
                          "accepted; nothing started",
    COMPUTE_GATE_STOPPED: "compute gate mid-run: the metered compute reached the accepted threshold; a checkpoint "
                          "was saved and training stopped",
    DATA_POLICY_BLOCKED: "data policy: the data policy blocked training (secrets, unreviewed special-category data)",
    EVALUATION_GATE_FAILED: "evaluation gate failed: the model is kept and marked as not approved",
    VERIFICATION_FAILED: "verification failed: a ledger, run directory or bundle was modified, damaged, or holds "
                         "files the ledger does not know (`--allow-extra` lists them instead)",
    RUN_INCOMPLETE: "run incomplete: `verify` on a run directory whose run stopped before its record stage (no "
                    "ledger entry yet); finish it with `ftaudit train --resume`",
    NOT_APPROVED: "release refused: no reviewer's signed approval of the run's current evidence (sign it off in "
                  "`ftaudit dashboard`; an approval older than the last evidence change no longer counts)",
    INTERRUPTED: "interrupted",
}


def markdown_table() -> str:
    return "| code | meaning |\n|---|---|\n" + "".join(f"| {c} | {m} |\n" for c, m in EXIT_CODES.items())


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


if __name__ == "__main__":
    print(markdown_table(), end="")
