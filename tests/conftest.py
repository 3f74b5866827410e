"""Shared by every test directory: no model hub, one thread per op, a throwaway PostgreSQL server and a local S3
server."""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

# Tests never reach a model hub: models are built from configs, tokenizers trained offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def _no_postgres(reason: str):
    if os.environ.get("FTAUDIT_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"FTAUDIT_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server():
    """Start PostgreSQL from the Debian binaries in a temp dir, on a unix socket only; stop it at the end.
    As root, the server runs as the `postgres` user (initdb refuses root)."""
    bindir = _pg_bindir()
    if bindir is None:
        _no_postgres("PostgreSQL server binaries (initdb, pg_ctl) not found")
    pytest.importorskip("psycopg")
    base = Path(tempfile.mkdtemp(prefix="ftaudit-pg-", dir="/tmp"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            _no_postgres("running as root and there is no `postgres` user to run the server")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, log = base / "data", base / "server.log"

    def run(*cmd):
        return subprocess.run([*prefix, *map(str, cmd)], capture_output=True, text=True, timeout=120)

    r = run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "ftaudit", "-E", "UTF8", "--no-sync")
    if r.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        _no_postgres(f"initdb failed: {r.stderr.strip()[:300]}")
    opts = f"-k {base} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    r = run(bindir / "pg_ctl", "-D", data, "-o", opts, "-l", log, "-w", "-t", "60", "start")
    if r.returncode != 0:
        msg = log.read_text()[-300:] if log.exists() else r.stderr
        shutil.rmtree(base, ignore_errors=True)
        _no_postgres(f"pg_ctl start failed: {msg.strip()}")
    try:
        yield f"postgresql://ftaudit@/{{db}}?host={base}"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server):
    """A fresh, empty database on the test server."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_server.format(db="postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.format(db=name)


@pytest.fixture(scope="session")
def s3_server() -> dict[str, str]:
    """A local S3 server (moto's) on a free port: the environment that points AWS clients (boto3, Arrow, Ray's
    nodes) at it. Given to the processes that need it, never set for the whole test run (in-process mocks of AWS
    would follow it)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch) -> dict[str, str]:
    """The local S3 server, its endpoint and credentials in this process's environment."""
    for k, v in s3_server.items():
        monkeypatch.setenv(k, v)
    return s3_server
