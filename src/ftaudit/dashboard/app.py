"""`ftaudit dashboard`: the compliance officer's web app over the ledger (server-rendered, works offline).

Every route needs a signed-in user (a session cookie) or an API token, except the login page, the static files
and the health check; roles are checked per action (viewer < engineer < reviewer < admin); every form carries the
session's CSRF token; Jinja2 escapes every value. Pages and `/api/...` read the same views (`views.py`); the JSON API
is described by `/api/openapi.json` (signed-in too).
"""


import hmac
import secrets
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from ftaudit.dashboard import accounts, questions, signoff, views
from ftaudit.dashboard.accounts import User
from ftaudit.errors import BadInput, FtauditError
from ftaudit.ledger.core import Ledger, open_ledger
from ftaudit.reporting.render import FILES

HERE = Path(__file__).parent
PUBLIC = {"/login", "/healthz"}  # and /static: nothing else is reachable without a session or a token
SESSION_S = 8 * 3600
MAX_FORM = 64 * 1024
LOGIN = "dashboard.login"


@dataclass
class Settings:
    ledger: str | None
    key_path: str | None = None
    https: bool = False  # cookies marked Secure (set when serving TLS)
    session_s: int = SESSION_S
    verify_every_s: float = 300.0


class Verification:
    """The ledger's verification, run at start and every few minutes in the background (it reads every entry, so
    not per page); a failure is a red banner on every page, never hidden."""

    def __init__(self, settings: Settings):
        self.settings, self.ok, self.message, self.at = settings, True, "not verified yet", None
        self._lock = threading.Lock()

    def run(self) -> None:
        from ftaudit.ledger.verify import load_trust, verify_ledger

        try:
            with open_ledger(self.settings.ledger, key_path=self.settings.key_path, create=False) as ledger:
                report = verify_ledger(ledger, load_trust(key_path=self.settings.key_path))
            ok, message = True, f"ledger verified: {report.entries} entries"
        except FtauditError as exc:
            ok, message = False, str(exc)
        with self._lock:
            self.ok, self.message, self.at = ok, message, datetime.now(timezone.utc)

    def loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.verify_every_s):
            self.run()


def create_app(settings: Settings) -> FastAPI:
    with open_ledger(settings.ledger, key_path=settings.key_path, create=False) as ledger:
        accounts.create_tables(ledger)
        secret = accounts.setting(ledger, "session_secret", lambda: secrets.token_hex(32))
    verification = Verification(settings)
    verification.run()
    stop = threading.Event()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(now=lambda: datetime.now(timezone.utc))
    templates.env.filters["sci"] = lambda x: "—" if x is None else f"{x:.2g}"
    templates.env.filters["pct"] = lambda x: "—" if x is None else f"{x:.0%}"
    templates.env.filters["days"] = _days

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=verification.loop, args=(stop,), daemon=True, name="ftaudit-verify").start()
        yield
        stop.set()

    app = FastAPI(title="ftaudit dashboard", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.add_middleware(SessionMiddleware, secret_key=secret, session_cookie="ftaudit_session",
                       max_age=settings.session_s, same_site="strict", https_only=settings.https)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.verification = verification

    @app.middleware("http")
    async def headers(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_FORM:
            return _error(request, 413, f"request over {MAX_FORM // 1024} kB")
        response = await call_next(request)
        response.headers.setdefault("content-security-policy", "default-src 'self'; img-src 'self' data:; "
                                    "style-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'")
        response.headers["x-content-type-options"] = "nosniff"
        response.headers["referrer-policy"] = "no-referrer"
        response.headers["cache-control"] = "no-store"
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 401 and not _wants_json(request):
            return RedirectResponse("/login?next=" + _safe_next(request.url.path), status_code=303)
        return _error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput):
        return _error(request, 400, str(exc))

    def _error(request: Request, status: int, message: str) -> Response:
        if _wants_json(request):
            return JSONResponse({"error": {"message": message, "code": status}}, status_code=status)
        return templates.TemplateResponse(request, "error.html", {"status": status, "message": message,
                                                                  "user": None, "verification": verification},
                                          status_code=status)

    # -- dependencies ---------------------------------------------------------------------------------------
    def ledger_dep():
        with open_ledger(settings.ledger, key_path=settings.key_path, create=False) as led:
            yield led

    LedgerDep = Annotated[Ledger, Depends(ledger_dep)]

    def current_user(request: Request, ledger: LedgerDep) -> User:
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            found = accounts.token_user(ledger, auth[7:])
            if found is None:
                raise HTTPException(401, "unknown or revoked API token")
            request.state.token = True
            return found
        name, issued = request.session.get("user"), request.session.get("issued", 0)
        if not name or time.time() - issued > settings.session_s:
            request.session.clear()
            raise HTTPException(401, "sign in first (or your session expired)")
        found = accounts.user(ledger, name)
        if found is None:
            request.session.clear()
            raise HTTPException(401, "this account no longer exists")
        request.state.token = False
        return found

    Viewer = Annotated[User, Depends(current_user)]

    def role(minimum: str):
        def check(user: Viewer) -> User:
            if not user.can(minimum):
                raise HTTPException(403, f"{user.username} is a {user.role}; this needs a {minimum} or above")
            return user
        return check

    Engineer = Annotated[User, Depends(role("engineer"))]
    Reviewer = Annotated[User, Depends(role("reviewer"))]
    Admin = Annotated[User, Depends(role("admin"))]

    def check_csrf(request: Request, sent: str) -> None:
        """A session's request carries the session's CSRF token; a token caller sends no cookie, so needs none."""
        if not getattr(request.state, "token", False) and not hmac.compare_digest(
                sent, request.session.get("csrf", "\0")):
            raise HTTPException(403, "the form's CSRF token is missing or stale; reload the page and try again")

    async def form_of(request: Request) -> dict[str, str]:
        """The posted form, CSRF checked."""
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        check_csrf(request, form.pop("csrf", "") or request.headers.get("x-csrf-token", ""))
        return form

    def page(request: Request, name: str, user: User | None, **ctx: Any) -> HTMLResponse:
        request.session.setdefault("csrf", secrets.token_urlsafe(32))
        return templates.TemplateResponse(request, name, {"user": user, "verification": verification,
                                                          "csrf": request.session["csrf"], **ctx})

    def record_or_404(ledger: Ledger, run_id: str):
        record = views.load_record(ledger, run_id)
        if record is None:
            raise HTTPException(404, f"no run {run_id} in this ledger")
        return record

    # -- sign in ---------------------------------------------------------------------------------------------
    @app.get("/healthz", include_in_schema=False)
    def health() -> dict:
        return {"status": "ok", "ledger_verified": verification.ok}

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/"):
        return page(request, "login.html", None, next=_safe_next(next), failed=False)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request, ledger: LedgerDep):
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        found = accounts.authenticate(ledger, form.get("username", "")[:64], form.get("password", "")[:1024])
        ledger.record_event(accounts.SCOPE, LOGIN, {"username": form.get("username", "")[:64], "ok": found is not None,
                                          "client": request.client.host if request.client else None})
        if found is None:
            request.session.clear()
            resp = page(request, "login.html", None, next=_safe_next(form.get("next", "/")), failed=True)
            resp.status_code = 401
            return resp
        request.session.clear()
        request.session.update(user=found.username, issued=time.time(), csrf=secrets.token_urlsafe(32))
        return RedirectResponse(_safe_next(form.get("next", "/")), status_code=303)

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, user: Viewer):
        await form_of(request)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # -- pages -----------------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request, user: Viewer, ledger: LedgerDep, page_no: int = 1, q: str = ""):
        return page(request, "overview.html", user, view=views.overview(ledger, page=max(1, page_no),
                                                                         query=q[:200] or None))

    @app.get("/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    def run(request: Request, run_id: str, user: Viewer, ledger: LedgerDep):
        view = views.run_page(ledger, run_id)
        if view is None:
            raise HTTPException(404, f"no run {run_id} in this ledger")
        return page(request, "run.html", user, view=view, doc_files=DOC_FILES)

    @app.get("/runs/{run_id}/documents/{name}", include_in_schema=False)
    def document(run_id: str, name: str, user: Viewer, ledger: LedgerDep):
        if name not in DOC_FILES:  # a fixed list: no path from the request reaches the file system
            raise HTTPException(404, f"no document {name!r}; choose one of {', '.join(DOC_FILES)}")
        record = record_or_404(ledger, run_id)
        from ftaudit.reporting.render import render_files

        ctx, _ = views.documents(ledger, run_id, record)
        body = render_files(ctx, [DOC_FILES[name]])[name]
        kind = {"json": "application/json", "md": "text/markdown; charset=utf-8",
                "html": "text/html; charset=utf-8"}[name.rsplit(".", 1)[1]]
        headers = {} if name == "report.html" else {"content-disposition": f'attachment; filename="{name}"'}
        resp = Response(body, media_type=kind, headers=headers)
        if name == "report.html":  # shown inline in a sandboxed frame: no script, no form, no navigation
            resp.headers["content-security-policy"] = "sandbox; default-src 'none'; style-src 'unsafe-inline'; " \
                                                      "img-src data:; frame-ancestors 'self'"
        return resp

    @app.get("/runs/{run_id}/complete", response_class=HTMLResponse, include_in_schema=False)
    def complete_form(request: Request, run_id: str, user: Viewer, ledger: LedgerDep, saved: int = 0):
        record = record_or_404(ledger, run_id)
        return page(request, "complete.html", user, record=record,
                    asked=views.open_questions(ledger, run_id, record), saved=saved, error=None)

    @app.post("/runs/{run_id}/complete", include_in_schema=False)
    async def complete(request: Request, run_id: str, user: Engineer,
                       ledger: LedgerDep):
        record = record_or_404(ledger, run_id)
        form = await form_of(request)
        try:
            changed = questions.record_answers(ledger, run_id, form, by=user.username, at=_now())
        except BadInput as exc:
            resp = page(request, "complete.html", user, record=record,
                        asked=views.open_questions(ledger, run_id, record), saved=0, error=str(exc), sent=form)
            resp.status_code = 400
            return resp
        return RedirectResponse(f"/runs/{run_id}/complete?saved={len(changed)}", status_code=303)

    @app.post("/runs/{run_id}/decision", include_in_schema=False)
    async def decision(request: Request, run_id: str, user: Reviewer,
                       ledger: LedgerDep):
        record_or_404(ledger, run_id)
        form = await form_of(request)
        try:
            signoff.decide(ledger, run_id, decision=form.get("decision", ""), reason=form.get("reason", ""),
                           reviewer=user, password=form.get("password", ""))
        except BadInput as exc:
            view = views.run_page(ledger, run_id)
            resp = page(request, "run.html", user, view=view, doc_files=DOC_FILES, decision_error=str(exc))
            resp.status_code = 400
            return resp
        return RedirectResponse(f"/runs/{run_id}#sign-off", status_code=303)

    def approved_briefing(ledger: Ledger, run_id: str):
        from ftaudit.dashboard import briefing

        record = record_or_404(ledger, run_id)
        ok, why, _ = signoff.release_state(ledger, run_id)
        if not ok:
            raise HTTPException(409, f"the briefing is for approved versions; this one is not: {why}")
        return briefing.build(ledger, run_id, record)

    @app.get("/runs/{run_id}/briefing", response_class=HTMLResponse, include_in_schema=False)
    def briefing_page(request: Request, run_id: str, user: Viewer, ledger: LedgerDep, done: int | None = None):
        from ftaudit.dashboard.briefing import CITATIONS

        return page(request, "briefing.html", user, b=approved_briefing(ledger, run_id), done=done, error=None,
                    citations=CITATIONS)

    @app.post("/runs/{run_id}/briefing", include_in_schema=False)
    async def briefing_read(request: Request, run_id: str, user: Viewer, ledger: LedgerDep):
        from ftaudit.dashboard.briefing import CITATIONS, acknowledge

        b = approved_briefing(ledger, run_id)
        form = await form_of(request)
        try:
            receipt = acknowledge(ledger, b, user, form)
        except BadInput as exc:
            resp = page(request, "briefing.html", user, b=b, done=None, error=str(exc), citations=CITATIONS)
            resp.status_code = 400
            return resp
        return RedirectResponse(f"/runs/{run_id}/briefing?done={receipt['score']}", status_code=303)

    @app.get("/briefings", response_class=HTMLResponse, include_in_schema=False)
    def briefings(request: Request, user: Reviewer, ledger: LedgerDep):
        from ftaudit.dashboard.briefing import receipts

        return page(request, "briefings.html", user, rows=receipts(ledger))

    @app.get("/briefings.csv", include_in_schema=False)
    def briefings_csv(user: Reviewer, ledger: LedgerDep):
        import csv
        import io

        from ftaudit.dashboard.briefing import receipts

        out = io.StringIO()
        cols = ["at", "username", "role", "run_id", "version", "evidence_seq", "score", "questions"]
        writer = csv.DictWriter(out, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for row in receipts(ledger):  # a cell a spreadsheet would run as a formula is quoted as text
            writer.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@" else v) for k, v in row.items()})
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": 'attachment; filename="briefings.csv"'})

    @app.get("/monitoring", response_class=HTMLResponse, include_in_schema=False)
    def monitoring(request: Request, user: Viewer, ledger: LedgerDep, page_no: int = 1):
        from ftaudit.monitor.incidents import NEXT

        return page(request, "monitoring.html", user, view=views.monitoring(ledger, page=max(1, page_no)),
                    next_steps=NEXT, error=None)

    @app.post("/monitoring/switch", include_in_schema=False)
    async def stop_switch(request: Request, user: Reviewer, ledger: LedgerDep):
        from ftaudit.monitor import switch

        form = await form_of(request)
        run_id, name, reason = form.get("run_id", ""), form.get("deployment", ""), form.get("reason", "").strip()
        if len(reason) < 3:
            raise BadInput("give the reason for the switch (3 characters or more)")
        if (run_id, name) not in views.deployments(ledger):
            raise HTTPException(404, "no such monitored deployment")
        act = {"suspend": switch.suspend, "resume": switch.resume}.get(form.get("action", ""))
        if act is None:
            raise BadInput("action: suspend or resume")
        act(ledger, run_id, name, reason=reason[:500], by=user.username)
        return RedirectResponse("/monitoring", status_code=303)

    @app.post("/monitoring/incidents/{incident_id}", include_in_schema=False)
    async def incident(request: Request, incident_id: str, user: Reviewer, ledger: LedgerDep):
        from ftaudit.monitor import incidents as inc

        form = await form_of(request)
        note = form.get("note", "").strip()
        if len(note) < 3:
            raise BadInput("give a note for the register (3 characters or more)")
        inc.update(ledger, incident_id, status=form.get("status", ""), by=user.username, note=note[:1000])
        return RedirectResponse("/monitoring#incidents", status_code=303)

    @app.get("/users", response_class=HTMLResponse, include_in_schema=False)
    def users(request: Request, user: Admin, ledger: LedgerDep):
        return page(request, "users.html", user, users=accounts.users(ledger), roles=accounts.ROLES, error=None,
                    token=None)

    @app.post("/users", include_in_schema=False)
    async def add_user(request: Request, user: Admin, ledger: LedgerDep):
        form = await form_of(request)
        error, token = None, None
        try:
            if form.get("action") == "token":
                token = accounts.new_token(ledger, user.username, form.get("label", "")[:100] or "automation")
            else:
                accounts.add_user(ledger, form.get("username", ""), form.get("role", ""), form.get("password", ""),
                                  by=user.username)
        except BadInput as exc:
            error = str(exc)
        resp = page(request, "users.html", user, users=accounts.users(ledger), roles=accounts.ROLES, error=error,
                    token=token)
        resp.status_code = 400 if error else 200
        return resp

    # -- JSON API --------------------------------------------------------------------------------------------
    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(user: Viewer) -> dict:
        return app.openapi()

    @app.get("/api/runs", tags=["runs"])
    def api_runs(user: Viewer, ledger: LedgerDep, page_no: int = 1, q: str = "") -> dict:
        """One page of model versions with role, compute against the threshold, documents and approval."""
        view = views.overview(ledger, page=max(1, page_no), query=q[:200] or None)
        for item in view["items"]:
            item["nearest_due"] = _days(item["nearest_due"]) if item["nearest_due"] is not None else None
        return view

    @app.get("/api/runs/{run_id}", tags=["runs"])
    def api_run(run_id: str, user: Viewer, ledger: LedgerDep) -> dict:
        """A run's decision, document completeness, answers given, release state and decisions."""
        record = record_or_404(ledger, run_id)
        ok, why, _ = signoff.release_state(ledger, run_id)
        return {"run_id": run_id, "name": record.model.output_name, "status": record.status,
                "decision": record.decision.model_dump(mode="json") if record.decision else None,
                "documents": views.completeness(ledger, run_id),
                "answers": questions.answered(ledger, run_id), "release": {"allowed": ok, "why": why},
                "decisions": [d.model_dump(mode="json") for d in signoff.decisions(ledger, run_id)]}

    @app.get("/api/briefings", tags=["briefings"])
    def api_briefings(user: Reviewer, ledger: LedgerDep) -> list[dict]:
        """Who read which version's briefing when, with their quiz score (evidence of Art. 4 AI literacy)."""
        from ftaudit.dashboard.briefing import receipts

        return receipts(ledger)

    @app.post("/api/runs/{run_id}/answers", tags=["runs"])
    async def api_answers(request: Request, run_id: str, user: Engineer,
                          ledger: LedgerDep) -> dict:
        """Answer document questions: a JSON object {question: text}; validated like `ftaudit docs --answers`."""
        record_or_404(ledger, run_id)
        body = await _json_body(request)
        check_csrf(request, request.headers.get("x-csrf-token", ""))
        changed = questions.record_answers(ledger, run_id, {k: str(v) for k, v in body.items()}, by=user.username,
                                           at=_now())
        return {"changed": changed}

    return app


# The files a run page offers: what the renderer writes, less the PDF (a download of minutes on a busy server).
DOC_FILES = {name: fmt for name, fmt in FILES.items() if fmt != "pdf"}


async def _json_body(request: Request) -> dict:
    import json

    try:
        body = json.loads(await request.body())
    except ValueError:
        raise BadInput("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadInput("send a JSON object")
    return body


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def _safe_next(path: str) -> str:
    """Only a local path: no open redirect through ?next=."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _days(delta) -> str:
    if delta is None:
        return "—"
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if abs(hours) >= 48 else f"{hours:.0f} h"
