"""HTTP Basic logins: the credentials of a request checked against the user store, the throttle applied.

The rules, in the order they are applied:

* No ``Authorization`` header, another scheme, or credentials that are not base64 of UTF-8 ``name:password``:
  401 with ``WWW-Authenticate: Basic``. These are not login attempts and are not counted.
* The same (name, password, source) already being verified: wait for that verification's result (the GUI's
  parallel first requests cost one argon2 run and one attempt, not one each).
* :class:`~balancedesk.core.mgmt.throttle.LoginThrottle` refuses: 429 with ``Retry-After``, nothing verified.
* A (name, password) this process verified before against the same stored hash: in (no argon2).
* Otherwise exactly one argon2 verification, off the event loop (``asyncio.to_thread``), against the user's
  stored hash — or, for a name that does not exist, against a dummy hash made at start with the same
  parameters. So a wrong password costs the same work whether the user exists, is disabled or is unknown,
  and timing does not tell which names exist. A disabled user's right password still fails.

Every refusal is 401 with the same message whatever the reason, so the answer does not tell either.

On a shared database (several servers as one) the throttle is a
:class:`~balancedesk.core.mgmt.shared_throttle.SharedThrottle`: every server counts the failures of all.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import secrets
import time
from collections.abc import Callable

from balancedesk.core.mgmt.auth import CredentialCache, hash_password, verify_password
from balancedesk.core.mgmt.errors import ApiFailure
from balancedesk.core.mgmt.service import Caller
from balancedesk.core.mgmt.shared_throttle import SharedThrottle
from balancedesk.core.mgmt.store import Store, UserRow
from balancedesk.core.mgmt.throttle import Attempt, LoginThrottle, Refused, source_key
from balancedesk.core.model import Problem
from fastapi import Request

CHALLENGE = {"WWW-Authenticate": 'Basic realm="balancedesk", charset="UTF-8"'}
WRONG = "The user name or password is wrong, or the user is disabled."
HELD_BY = {
    "pair": "for this user from your address",
    "source": "from your address",
    "user": "for this user",
}

Verify = Callable[[str, str], bool]


def unauthorized(message: str) -> ApiFailure:
    return ApiFailure(401, message, headers=CHALLENGE)


def parse_basic(header: str) -> tuple[str, str]:
    """``Basic base64(name:password)`` → (name, password); 401 if it is anything else."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise unauthorized("Only HTTP Basic authentication is supported.")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    name, sep, password = decoded.partition(":")
    if not sep:
        raise unauthorized("The Basic credentials are malformed.")
    return name, password


class Authenticator:
    """Turns a request into the :class:`Caller` it authenticates (or raises 401/429/403/400).

    ``verify`` is the argon2 check (the real one unless a test wraps it to count its calls); ``clock`` gives
    the throttle its ``now``. The throttle by default: shared with the other servers on a shared database,
    else this process's own."""

    def __init__(
        self,
        store: Store,
        *,
        verify: Verify = verify_password,
        throttle: LoginThrottle | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.verify = verify
        self.throttle = throttle or (SharedThrottle(store) if store.shared else LoginThrottle())
        self.clock = clock
        self.cache = CredentialCache()
        self.dummy_hash = hash_password(secrets.token_urlsafe(18))
        self._inflight: dict[tuple[str, str, bytes], asyncio.Task[UserRow | None]] = {}

    async def __call__(self, request: Request) -> Caller:
        header = request.headers.get("authorization")
        if not header:
            raise unauthorized("Authentication is required: send HTTP Basic credentials.")
        name, password = parse_basic(header)
        source = source_key(request.client.host if request.client else "?")
        user = await self.login(name, password, source)
        if user is None:
            raise unauthorized(WRONG)
        caller = Caller(user.name, user.is_admin)
        if "user" in request.query_params and request.url.path.startswith("/api/mgmt/"):
            return self._on_behalf_of(caller, request.query_params.getlist("user"))
        return caller

    async def login(self, name: str, password: str, source: str) -> UserRow | None:
        """The user these credentials log in as, or None; 429 (ApiFailure) while the throttle holds them."""
        key = (name, source, self.cache.fingerprint(password))
        task = self._inflight.get(key)
        if task is None:
            verdict = self.throttle.admit(name, source, self.clock())
            if isinstance(verdict, Refused):
                wait = max(1, math.ceil(verdict.wait_s))
                raise ApiFailure(
                    429,
                    f"Too many failed logins {HELD_BY[verdict.by]}; try again in {wait} s.",
                    [Problem("Authorization", f"login attempts are slowed {HELD_BY[verdict.by]}")],
                    headers={"Retry-After": str(wait)},
                )
            user = self.store.user(name)
            if user is not None and user.active and self.cache.known(name, password, user.pw_hash):
                self.throttle.succeeded(verdict, self.clock())
                return user
            # a task of its own: a client that hangs up does not cancel the verification or its bookkeeping
            task = asyncio.get_running_loop().create_task(self._verify(verdict, user, name, password))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _verify(self, attempt: Attempt, user: UserRow | None, name: str, password: str) -> UserRow | None:
        pw_hash = user.pw_hash if user is not None else self.dummy_hash
        ok = False
        try:
            ok = await asyncio.to_thread(self.verify, pw_hash, password) and user is not None and user.active
        finally:
            if ok and user is not None:
                self.cache.remember(name, password, user.pw_hash)
                self.throttle.succeeded(attempt, self.clock())
            else:
                self.throttle.failed(attempt, self.clock())
        return user if ok else None

    def _on_behalf_of(self, caller: Caller, names: list[str]) -> Caller:
        """HDP's ``?user=NAME``: an Administrator acts as that user (with that user's rights, no more) on the
        connector endpoints. Anyone else, an empty or repeated name, or an unknown or disabled user: 4xx."""
        if not caller.is_admin:
            raise ApiFailure(403, f"Only an Administrator can act on behalf of another user (?user=); "
                                  f"{caller.name} is not one.")
        if len(names) != 1 or not names[0]:
            raise ApiFailure(400, "?user= takes exactly one user name.", [Problem("user", "one user name")])
        target = self.store.user(names[0])
        if target is None or not target.active:
            why = "there is no user named" if target is None else "this user is disabled:"
            raise ApiFailure(400, f"?user=: {why} {names[0]!r}.", [Problem("user", f"{why} {names[0]!r}")])
        return Caller(target.name, target.is_admin)
