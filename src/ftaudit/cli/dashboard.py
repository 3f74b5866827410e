"""`ftaudit dashboard` (the web app), `ftaudit dashboard user add`, and `ftaudit release RUN_DIR`.

Exit codes: 0 ok; 1 bad input (a ledger that does not open, a weak password, a wider bind without TLS or
--insecure-bind); 7 the ledger fails verification (release); 9 release refused: no valid approval of the run's
current evidence.
"""

from __future__ import annotations

from ftaudit.cli.ledger import _common, default_ledger
from ftaudit.dashboard.roles import ROLES


def register(sub) -> None:
    p = sub.add_parser("dashboard", help="the compliance officer's web app over the ledger")
    dsub = p.add_subparsers(dest="dashboard_command", metavar="ACTION")
    p.add_argument("--listen", default="127.0.0.1:8765", metavar="HOST:PORT", help="default: 127.0.0.1:8765")
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (needs --tls-key)")
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    p.add_argument("--insecure-bind", action="store_true",
                   help="allow a non-loopback address without TLS (behind a TLS-terminating proxy)")
    _common(p)
    p.set_defaults(handler=serve)

    u = dsub.add_parser("user", help="manage dashboard users")
    usub = u.add_subparsers(dest="user_command", metavar="ACTION")
    a = usub.add_parser("add", help="add a user (the first one: --role admin)")
    a.add_argument("username")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument("--password-env", metavar="NAME",
                   help="read the password from this environment variable (default: ask on the terminal)")
    a.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _common(a)
    a.set_defaults(handler=user_add)

    r = sub.add_parser("release", help="check that a reviewer approved the run's current evidence; record it")
    r.add_argument("run_dir", metavar="RUN_DIR")
    r.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _common(r)
    r.set_defaults(handler=release)


def serve(args) -> int:
    import uvicorn

    from ftaudit.cli.monitor import _listen
    from ftaudit.dashboard.app import Settings, create_app
    from ftaudit.errors import BadInput

    host, port = _listen(args.listen)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise BadInput("--tls-cert and --tls-key go together")
    if host not in ("127.0.0.1", "localhost", "::1") and not args.tls_cert and not args.insecure_bind:
        raise BadInput(f"--listen {args.listen}: beyond loopback the dashboard needs TLS (--tls-cert/--tls-key) "
                       "or --insecure-bind behind a TLS-terminating proxy")
    settings = Settings(ledger=default_ledger(args.ledger), key_path=args.key, https=bool(args.tls_cert))
    app = create_app(settings)
    scheme = "https" if args.tls_cert else "http"
    print(f"ftaudit dashboard on {scheme}://{host}:{port} over {settings.ledger or 'the default ledger'}; "
          f"{app.state.verification.message}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key)
    return 0


def user_add(args) -> int:
    import getpass
    import json
    import os

    from ftaudit.dashboard import accounts
    from ftaudit.errors import BadInput
    from ftaudit.ledger.core import open_ledger

    if args.password_env:
        password = os.environ.get(args.password_env, "")
        if not password:
            raise BadInput(f"--password-env {args.password_env}: that environment variable is empty")
    else:
        password = getpass.getpass(f"password for {args.username}: ")
        if password != getpass.getpass("again: "):
            raise BadInput("the two passwords differ")
    with open_ledger(default_ledger(args.ledger), key_path=args.key) as ledger:
        user = accounts.add_user(ledger, args.username, args.role, password, by=getpass.getuser())
        where = ledger.location
    out = {"username": user.username, "role": user.role, "public_key": user.public_key, "ledger": where}
    print(json.dumps(out, indent=2) if args.json else f"added {user.role} {user.username} to {where}")
    return 0


def release(args) -> int:
    import json

    from ftaudit.dashboard.signoff import RELEASE, NotApproved, release_state
    from ftaudit.ledger.core import open_ledger
    from ftaudit.ledger.verify import load_trust, verify_ledger
    from ftaudit.record import RunRecord

    record = RunRecord.load(args.run_dir)
    with open_ledger(default_ledger(args.ledger), key_path=args.key, create=False) as ledger:
        verify_ledger(ledger, load_trust())  # exit 7 on a ledger that fails
        ok, why, approval = release_state(ledger, record.run_id)
        if not ok:
            raise NotApproved(f"release of {record.model.output_name or record.run_id} refused: {why}")
        entry = ledger.record_event(record.run_id, RELEASE, {"approval_at": approval.at,
                                                             "reviewer": approval.reviewer,
                                                             "evidence_seq": approval.evidence.seq})
    out = {"run_id": record.run_id, "released": True, "why": why, "ledger_entry": entry.seq}
    print(json.dumps(out, indent=2) if args.json else f"release of {record.model.output_name or record.run_id} "
          f"recorded (ledger entry {entry.seq}): {why}")
    return 0
