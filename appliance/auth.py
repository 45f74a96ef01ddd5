"""Who may do what in the web app and API: users with one role each, machine tokens, sessions, the audit log.

Roles follow the people in DOMAIN.md: the engineer runs the probe, the marketer draws fences and builds
campaigns, the approver signs campaigns off, a report client sees the reports of its own fences and nothing
else, the admin manages users and tokens. Passwords are scrypt hashes; API tokens are stored as SHA-256 hashes so
a copied database does not leak them; a browser session is an HMAC-signed cookie with an expiry. Every change
anyone makes is a row in the audit log (who, when, what, on which object).
"""

import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Role(StrEnum):
    ENGINEER = "engineer"
    MARKETER = "marketer"
    APPROVER = "approver"
    CLIENT = "client"
    ADMIN = "admin"


# What each role may do; the admin may do everything any role may, plus administration.
PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.ENGINEER: frozenset({"status", "cells", "metrics"}),
    Role.MARKETER: frozenset({"cells", "fences:read", "fences:write", "campaigns:read", "campaigns:write",
                              "triggers"}),
    Role.APPROVER: frozenset({"cells", "fences:read", "campaigns:read", "campaigns:approve", "triggers"}),
    Role.CLIENT: frozenset({"reports"}),
}
PERMISSIONS[Role.ADMIN] = frozenset().union(*PERMISSIONS.values()) | {"admin", "explain"}

SESSION_S = 8 * 3600

_DDL = """
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL,
                                  fences TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
                                   fences TEXT NOT NULL DEFAULT '[]', created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, actor TEXT NOT NULL,
                                  action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
"""


class AuthError(ValueError):
    """A user/token request that cannot be honoured (unknown role, duplicate name, weak password)."""


@dataclass(frozen=True)
class Principal:
    """The person or machine behind a request."""

    name: str
    role: Role
    fences: frozenset[str] = field(default_factory=frozenset)  # a client's fences; empty for other roles

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS[self.role]

    def may_see_fence(self, fence: str) -> bool:
        """Clients see their own fences only; staff roles with a fence or report permission see all."""
        if self.role == Role.CLIENT:
            return fence in self.fences
        return self.can("fences:read") or self.can("reports")


def _hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def _check_password(password: str, stored: str) -> bool:
    _, salt, _ = stored.split("$")
    return hmac.compare_digest(_hash_password(password, bytes.fromhex(salt)), stored)


class Accounts:
    """Users, tokens and the audit log in one SQLite file beside the daemon's other state."""

    def __init__(self, path: str | Path, secret: bytes | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_DDL)
        self._lock = threading.Lock()
        key_file = self.path.with_suffix(".session.key")
        if secret is None:
            if not key_file.exists():
                key_file.write_text(secrets.token_hex(32))
                key_file.chmod(0o600)
            secret = bytes.fromhex(key_file.read_text().strip())
        self._secret = secret

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def add_user(self, name: str, role: str, password: str, fences: list[str] = (), actor: str = "setup") -> None:
        if role not in Role.__members__.values():
            raise AuthError(f"role {role!r} is not one of {', '.join(Role)}")
        if len(password) < 8:
            raise AuthError("a password needs at least 8 characters")
        if self._run("SELECT 1 FROM users WHERE name = ?", (name,)):
            raise AuthError(f"user {name!r} already exists")
        self._run("INSERT INTO users VALUES (?, ?, ?, ?)", (name, role, _hash_password(password),
                                                            json.dumps(sorted(fences))))
        self.audit(actor, "user.add", name, {"role": role, "fences": sorted(fences)})

    def login(self, name: str, password: str) -> Principal | None:
        rows = self._run("SELECT role, password, fences FROM users WHERE name = ?", (name,))
        if not rows or not _check_password(password, rows[0][1]):
            self.audit(name, "login.failed", name, {})
            return None
        self.audit(name, "login", name, {})
        return Principal(name, Role(rows[0][0]), frozenset(json.loads(rows[0][2])))

    def new_token(self, name: str, role: str, fences: list[str] = (), actor: str = "setup") -> str:
        """A bearer token for a machine (the campaign engine, Prometheus); shown once, stored hashed."""
        if role not in Role.__members__.values():
            raise AuthError(f"role {role!r} is not one of {', '.join(Role)}")
        token = "sgl_" + secrets.token_urlsafe(32)
        self._run("INSERT INTO tokens VALUES (?, ?, ?, ?, ?)",
                  (hashlib.sha256(token.encode()).hexdigest(), name, role, json.dumps(sorted(fences)), time.time()))
        self.audit(actor, "token.add", name, {"role": role})
        return token

    def from_token(self, token: str) -> Principal | None:
        rows = self._run("SELECT name, role, fences FROM tokens WHERE hash = ?",
                         (hashlib.sha256(token.encode()).hexdigest(),))
        return Principal(rows[0][0], Role(rows[0][1]), frozenset(json.loads(rows[0][2]))) if rows else None

    def session_cookie(self, who: Principal, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + SESSION_S)
        payload = json.dumps([who.name, who.role.value, sorted(who.fences), expires])
        body = base64.urlsafe_b64encode(payload.encode()).decode()
        mac = hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()
        return f"{body}.{mac}"

    def from_cookie(self, cookie: str, now: float | None = None) -> Principal | None:
        body, _, mac = cookie.rpartition(".")
        if not body or not hmac.compare_digest(hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest(),
                                               mac):
            return None
        name, role, fences, expires = json.loads(base64.urlsafe_b64decode(body))
        if expires < (time.time() if now is None else now):
            return None
        return Principal(name, Role(role), frozenset(fences))

    def audit(self, actor: str, action: str, target: str, detail: dict) -> None:
        self._run("INSERT INTO audit (ts, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                  (time.time(), actor, action, target, json.dumps(detail, sort_keys=True, default=str)))

    def audit_log(self, limit: int = 200, target: str | None = None) -> list[dict]:
        sql = "SELECT seq, ts, actor, action, target, detail FROM audit"
        args: tuple = ()
        if target:
            sql, args = sql + " WHERE target = ?", (target,)
        rows = self._run(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit))
        return [{"seq": s, "ts": ts, "actor": a, "action": act, "target": t, "detail": json.loads(d)}
                for s, ts, a, act, t, d in rows]

    def close(self) -> None:
        self._db.close()
