"""The state every worker of one balancer process shares: health marks, sticky affinity entries, runtime
overrides and the counters the snapshot sums.

With ``--workers N`` each worker is a process with its own :class:`~balancedesk.core.proxy.runtime.Runtime`
per group; without this, a member one worker found dead would still be tried by the others, a key one worker
moved to B during an outage would go elsewhere on another, and a drain sent to the admin endpoint would
reach worker 0 only. :class:`SharedState` is one anonymous shared mapping (``mmap(-1, n)``:
``MAP_SHARED | MAP_ANONYMOUS``) made by the parent before it forks — in every mode: one group, ``--config``
with several groups, ``--api`` following a pool — so every worker maps the same pages, and a group that
appears after the fork finds its room there too. :class:`SharedGroup` is one group's view of it, given to
that group's ``Runtime``. The snapshot's ``shared`` object says what is shared (:func:`shared_json`).

The rules:

* **Slots, bounded and reclaimed**: ``SHARED_MEMBER_SLOTS`` (group, member) slots, keyed by a 16-byte
  digest of (connectorID, memberID); one more per group (member ID ``""``) holds the group's totals. A
  ``Runtime`` binds its members' slots (claimed if new) and releases them when a member leaves its config or
  the ``Runtime`` closes (a group deleted, a listener reopened): a slot counts the runtimes bound to it, and
  the last release frees it — its marks, overrides and counters zeroed, the sticky entries naming it
  cleared. Past the bound a member's marks stay with the worker that made them (counted ``unshared``).
* **Health marks**: per slot, the passive mark's deadline (``disabled until``, a ``CLOCK_MONOTONIC`` time:
  that clock is system-wide, so a deadline one worker set means the same instant to every other; 0 = no
  mark) and the failures every worker counted. A worker that marks or clears a member writes there and
  bumps the mapping's **generation**. Before every pick (both data planes pick through
  ``Runtime.first_pick`` / ``Runtime.begin``) a worker compares the generation with the one it last saw (one
  read of shared memory) and, when it moved, adopts every member's deadline and override. Active health
  checks stay per worker (each probes for itself).
* **Runtime overrides** (drain/disable/enable, live weights, revert): the admin endpoint — served by worker
  0 — sets the override in its ``Runtime`` and writes it to the member's slot (state code, weight; 0 = none)
  with a generation bump, so every worker obeys it from its next pick on. Each worker keeps the adopted
  overrides in its ``Runtime.overrides`` and re-applies them after every config update it applies, as a
  single worker does.
* **Counters**: each worker has its own row of counters per slot (active, total, failures, bytes in, bytes
  out; in the group slot: accepted, active, refused, failed, and the server's version of the config the
  worker applies) and writes it every ``SHARED_COUNTS_PERIOD_S``, when it applies a config, and (worker 0)
  just before it answers a snapshot. The snapshot's counters and shares are the sums over
  the workers' rows — the process's — at most that period old for the other workers; latency percentiles,
  events and ``/metrics`` stay worker 0's.
* **Sticky entries**: a :class:`~balancedesk.core.balance.sticky.StickyStore` over one set-associative table
  of ``STICKY_ENTRIES`` slots for the process (``STICKY_WAYS`` per set) holding the keys displaced from
  their rendezvous choice (key hash, member slot, last use). A key is identified by ``hash(key) ^
  hash(groupID)``: the forked workers share the interpreter's hash seed, so they agree; two keys with one
  64-bit hash would share an entry. A lookup reads the key's set without a lock and restarts the entry's
  idle clock with one store; a put, a discard or an expiry takes the lock (rare: only displaced keys make
  entries). A full set evicts its entry idle longest. ``sweep`` looks at ``STICKY_SWEEP_SLOTS`` slots per
  call, round the table.
* **Writes** take one ``multiprocessing`` lock (a futex-backed semaphore in shared memory: no system call
  while uncontended), except a worker's own counter row (one writer). Readers never lock: a reader that saw
  a torn slot ignores it, and the generation is bumped after the write, so the next pick reads it again.
  A worker killed while it held slots leaves them bound (the process is then restarted as a whole).
"""

from __future__ import annotations

import dataclasses
import hashlib
import mmap
import multiprocessing
from collections.abc import Iterable, Iterator
from typing import Any

from balancedesk.core.balance import StickyCounts
from balancedesk.core.proxy import limits

_HEADER_WORDS = 8  # generation, high water, unshared, sticky entries, evictions, expiries, slots in use, –
GEN_WORD, _HIGH, _UNSHARED, _ENTRIES, _EVICTIONS, _EXPIRIES, _IN_USE = range(7)
_DIGEST = 16  # bytes of a (group, member) slot's identity (blake2b)
COUNTS = 5  # counter words per worker and slot: active, total, failures, bytes_in, bytes_out; in the group
# slot: accepted, active, refused, failed, and the server's version of the config the worker applies
GROUP_SLOT = ""  # the member ID of a group's own slot (its totals)
STATE_CODES = {"drain": 1, "disabled": 2}  # an override's state in its slot (0: none)
_STATES = {v: k for k, v in STATE_CODES.items()}


def _digest(group_id: str, member_id: str) -> bytes:
    return hashlib.blake2b(f"{group_id}\x00{member_id}".encode(), digest_size=_DIGEST).digest()


class SharedState:
    """One balancer process's shared mapping. Make it before forking the workers (each sets ``worker`` to its
    index); each worker then makes a :class:`SharedGroup` per group it serves (``group(...)``)."""

    def __init__(self, *, workers: int, member_slots: int = limits.SHARED_MEMBER_SLOTS,
                 sticky_entries: int = limits.STICKY_ENTRIES, ways: int = limits.STICKY_WAYS,
                 idle_s: float = limits.STICKY_IDLE_S) -> None:
        sets = sticky_entries // ways
        if sets < 1 or sets & (sets - 1):
            raise ValueError("sticky_entries / ways must be a power of two")
        self.workers = workers
        self.worker = 0  # this process's worker index (set in each forked worker)
        self.ticker: object = None  # the worker's counters timer (``runtime.CountsTicker``), made in the worker
        self.member_slots = member_slots
        self.capacity = sets * ways
        self.ways = ways
        self.idle_s = idle_s
        self._set_mask = sets - 1
        self.lock = multiprocessing.get_context("fork").Lock()
        n, cap = member_slots, self.capacity
        size = _HEADER_WORDS * 8 + n * _DIGEST + 5 * n * 8 + workers * n * COUNTS * 8 + workers * 8 + 3 * cap * 8
        self._mm = mmap.mmap(-1, size)  # anonymous and shared: the forked workers see the same pages
        view = memoryview(self._mm)
        at = 0

        def take(nbytes: int) -> memoryview:
            nonlocal at
            part = view[at:at + nbytes]
            at += nbytes
            return part

        self.header = take(_HEADER_WORDS * 8).cast("q")
        self.ids = take(n * _DIGEST)  # each slot's (group, member) digest (zeros: free)
        self.refs = take(n * 8).cast("q")  # runtimes bound to each slot
        self.until = take(n * 8).cast("d")  # the passive mark's deadline (0: none)
        self.failures = take(n * 8).cast("q")  # failed connects (or requests) by every worker
        self.ostate = take(n * 8).cast("q")  # the override's state code (STATE_CODES; 0: none)
        self.oweight = take(n * 8).cast("q")  # the override's weight (0: none)
        self.stats = take(workers * n * COUNTS * 8).cast("q")  # [worker][slot][COUNTS]
        self.stamps = take(workers * 8).cast("d")  # when each worker last wrote its counters (monotonic s)
        self.hashes = take(cap * 8).cast("q")
        self.mslots = take(cap * 8).cast("q")
        self.lasts = take(cap * 8).cast("d")
        self._views: list[memoryview[Any]] = [self.header, self.ids, self.refs, self.until, self.failures,
                                              self.ostate, self.oweight, self.stats, self.stamps,
                                              self.hashes, self.mslots, self.lasts]

    def group(self, group_id: str) -> SharedGroup:
        return SharedGroup(self, group_id)

    def generation(self) -> int:
        return int(self.header[GEN_WORD])

    # slots (claimed and released under the lock) --------------------------------------------------
    def acquire(self, digest: bytes) -> int | None:
        """Bind (group, member) ``digest``'s slot, claimed if it has none yet; None when every slot is taken."""
        with self.lock:
            found = self._find(digest)
            if found is not None:
                self.refs[found] += 1
                return found
            high = int(self.header[_HIGH])
            free = next((i for i in range(high) if self.refs[i] == 0), None)
            if free is None:
                if high >= self.member_slots:
                    self.header[_UNSHARED] += 1
                    return None
                free = high
                self.header[_HIGH] = high + 1
            self._zero(free)
            self.ids[free * _DIGEST:(free + 1) * _DIGEST] = digest
            self.refs[free] = 1
            self.header[_IN_USE] += 1
            return free

    def release(self, slots: Iterable[int]) -> None:
        """Unbind ``slots``; a slot no runtime is bound to any more is freed (its sticky entries cleared)."""
        freed: set[int] = set()
        with self.lock:
            for s in slots:
                self.refs[s] -= 1
                if self.refs[s] <= 0:
                    self.refs[s] = 0
                    self.ids[s * _DIGEST:(s + 1) * _DIGEST] = bytes(_DIGEST)
                    self._zero(s)
                    self.header[_IN_USE] -= 1
                    freed.add(s)
            if freed:
                hashes, mslots = self.hashes, self.mslots
                for i, m in enumerate(mslots.tolist()):  # one pass over the table (a group deleted: rare)
                    if m in freed and hashes[i] != 0:
                        hashes[i] = 0
                        self.header[_ENTRIES] -= 1
                self.header[GEN_WORD] += 1

    def _zero(self, s: int) -> None:
        self.until[s] = 0.0
        self.failures[s] = 0
        self.ostate[s] = 0
        self.oweight[s] = 0
        n = self.member_slots
        for w in range(self.workers):
            base = (w * n + s) * COUNTS
            for k in range(COUNTS):
                self.stats[base + k] = 0

    def _find(self, digest: bytes) -> int | None:
        ids, refs = self.ids, self.refs
        for i in range(int(self.header[_HIGH])):
            if refs[i] > 0 and ids[i * _DIGEST:(i + 1) * _DIGEST] == digest:
                return i
        return None

    def digest_at(self, slot: int) -> bytes:
        return bytes(self.ids[slot * _DIGEST:(slot + 1) * _DIGEST])

    def publish_mark(self, slot: int, until: float | None, *, failed: bool = False) -> None:
        with self.lock:
            self.until[slot] = until if until is not None else 0.0
            if failed:
                self.failures[slot] += 1
            self.header[GEN_WORD] += 1

    def publish_override(self, slot: int, state: str | None, weight: int | None) -> None:
        with self.lock:
            self.ostate[slot] = STATE_CODES.get(state or "", 0)
            self.oweight[slot] = weight or 0
            self.header[GEN_WORD] += 1

    def write_counts(self, slot: int, counts: tuple[int, int, int, int, int]) -> None:
        """This worker's counters of ``slot`` (its own row: no lock)."""
        base = (self.worker * self.member_slots + slot) * COUNTS
        for k, v in enumerate(counts):
            self.stats[base + k] = v

    def summed(self, slot: int) -> list[int]:
        """``slot``'s counters summed over every worker's row."""
        n, out = self.member_slots, [0] * COUNTS
        for w in range(self.workers):
            base = (w * n + slot) * COUNTS
            for k in range(COUNTS):
                out[k] += int(self.stats[base + k])
        return out

    def per_worker(self, slot: int, word: int) -> list[int]:
        n = self.member_slots
        return [int(self.stats[(w * n + slot) * COUNTS + word]) for w in range(self.workers)]

    def counts(self) -> StickyCounts:
        h = self.header
        return StickyCounts(int(h[_ENTRIES]), self.capacity, self.idle_s, int(h[_EVICTIONS]), int(h[_EXPIRIES]))

    def unshared(self) -> int:
        return int(self.header[_UNSHARED])

    def in_use(self) -> int:
        return int(self.header[_IN_USE])

    def close(self) -> None:
        for v in self._views:
            v.release()
        self._mm.close()


class SharedGroup:
    """One group's view of a :class:`SharedState`: its members' slots (marks, overrides, counters), and a
    :class:`~balancedesk.core.balance.sticky.StickyStore` over the shared sticky table."""

    def __init__(self, state: SharedState, group_id: str) -> None:
        self.state = state
        self.group_id = group_id
        self.capacity = state.capacity
        self.idle_s = state.idle_s
        self._salt = hash(group_id)
        self._slot: dict[str, int] = {}  # memberID → its slot (members of the current config that have one)
        self._member: dict[int, str] = {}  # the other way
        self._group_slot: int | None = None  # the group's totals
        self._cursor = 0  # where the next sweep starts

    # slots ----------------------------------------------------------------------------------------
    def bind(self, member_ids: Iterable[str]) -> None:
        """The group's members now (at start and after every config change): the new ones' slots bound
        (claimed if new), the slots of members that left released."""
        st = self.state
        if self._group_slot is None:
            self._group_slot = st.acquire(_digest(self.group_id, GROUP_SLOT))
        want = list(dict.fromkeys(member_ids))
        old = self._slot
        new: dict[str, int] = {}
        for mid in want:
            if mid in old:
                new[mid] = old[mid]
                continue
            slot = st.acquire(_digest(self.group_id, mid))
            if slot is not None:
                new[mid] = slot
        gone = [s for m, s in old.items() if m not in new]
        self._slot = new
        self._member = {s: m for m, s in new.items()}
        if gone:
            st.release(gone)

    def unbind(self) -> None:
        """This view is done (its ``Runtime`` closed): every slot it holds released."""
        slots = list(self._slot.values())
        if self._group_slot is not None:
            slots.append(self._group_slot)
        self._slot, self._member, self._group_slot = {}, {}, None
        if slots:
            self.state.release(slots)

    # marks ----------------------------------------------------------------------------------------
    def publish(self, member_id: str, until: float | None, *, failed: bool = False) -> None:
        """This worker's mark of ``member_id`` changed (``until`` None: cleared; ``failed``: by a failure,
        counted for all workers)."""
        slot = self._slot.get(member_id)
        if slot is not None:
            self.state.publish_mark(slot, until, failed=failed)

    def failures(self, member_id: str) -> int | None:
        """Failures of ``member_id`` counted by every worker (None: it has no shared slot)."""
        slot = self._slot.get(member_id)
        return int(self.state.failures[slot]) if slot is not None else None

    def marks(self) -> Iterator[tuple[str, float | None]]:
        """Every bound member's shared deadline (None: no mark)."""
        until = self.state.until
        for mid, slot in self._slot.items():
            t = until[slot]
            yield mid, (t if t > 0.0 else None)

    # overrides ------------------------------------------------------------------------------------
    def publish_override(self, member_id: str, state: str | None, weight: int | None) -> None:
        """``member_id``'s override as the admin endpoint set it (both None: reverted), for every worker."""
        slot = self._slot.get(member_id)
        if slot is not None:
            self.state.publish_override(slot, state, weight)

    def overrides(self) -> Iterator[tuple[str, str | None, int | None]]:
        """Every bound member's shared override: (memberID, state or None, weight or None)."""
        st = self.state
        for mid, slot in self._slot.items():
            yield mid, _STATES.get(int(st.ostate[slot])), (int(st.oweight[slot]) or None)

    # counters -------------------------------------------------------------------------------------
    def write_counts(self, members: dict[str, tuple[int, int, int, int, int]],
                     totals: tuple[int, int, int, int, int], *, now: float) -> None:
        """This worker's counters: per member (active, total, failures, bytes in, bytes out) and the group's
        (accepted, active, refused, failed, the server's version of the config it applies)."""
        st = self.state
        for mid, counts in members.items():
            slot = self._slot.get(mid)
            if slot is not None:
                st.write_counts(slot, counts)
        if self._group_slot is not None:
            st.write_counts(self._group_slot, totals)
        st.stamps[st.worker] = now

    def member_sums(self, member_id: str) -> list[int] | None:
        slot = self._slot.get(member_id)
        return self.state.summed(slot) if slot is not None else None

    def totals_sums(self) -> tuple[list[int], list[int], list[int]] | None:
        """(accepted, active, refused, failed, –) summed over the workers; accepted per worker; the server's
        version of the config each worker applies."""
        s = self._group_slot
        if s is None:
            return None
        return self.state.summed(s), self.state.per_worker(s, 0), self.state.per_worker(s, COUNTS - 1)

    # the StickyStore protocol ----------------------------------------------------------------------
    def _hash(self, key: str) -> int:
        return hash(key) ^ self._salt or 1  # 0 marks an empty slot

    def _set(self, h: int) -> range:
        st = self.state
        base = (h & st._set_mask) * st.ways
        return range(base, base + st.ways)

    def get(self, key: str, *, now: float) -> str | None:
        st = self.state
        h = hash(key) ^ self._salt or 1
        base = (h & st._set_mask) * st.ways
        hashes = st.hashes
        row = hashes[base:base + st.ways].tolist()  # the key's set, compared in C
        if h not in row:
            return None  # the usual case: a key on its rendezvous choice has no entry
        i = base + row.index(h)
        mslot = int(st.mslots[i])
        last = st.lasts[i]
        if hashes[i] != h:  # rewritten while read
            return None
        if now - last >= st.idle_s:
            with st.lock:
                if hashes[i] == h:
                    self._clear(i)
                    st.header[_EXPIRIES] += 1
            return None
        member = self._member.get(mslot)
        if member is None:  # a member this worker's config does not have (yet, or any more)
            return None
        st.lasts[i] = now
        return member

    def put(self, key: str, member_id: str, *, now: float) -> None:
        slot = self._slot.get(member_id)
        if slot is None:
            return  # a member without a shared slot: the key cannot be remembered for every worker
        st = self.state
        h = self._hash(key)
        with st.lock:
            free = oldest = -1
            for i in self._set(h):
                hi = st.hashes[i]
                if hi == h:
                    st.mslots[i] = slot
                    st.lasts[i] = now
                    return
                if hi == 0 or now - st.lasts[i] >= st.idle_s:
                    if free < 0:
                        free = i
                elif oldest < 0 or st.lasts[i] < st.lasts[oldest]:
                    oldest = i
            if free >= 0:
                if st.hashes[free] != 0:
                    self._clear(free)
                    st.header[_EXPIRIES] += 1
                i = free
            else:
                i = oldest
                self._clear(i)
                st.header[_EVICTIONS] += 1
            st.mslots[i] = slot
            st.lasts[i] = now
            st.hashes[i] = h  # last: a reader that sees the hash sees the rest
            st.header[_ENTRIES] += 1

    def discard(self, key: str) -> None:
        st = self.state
        h = self._hash(key)
        with st.lock:
            for i in self._set(h):
                if st.hashes[i] == h:
                    self._clear(i)
                    return

    def _clear(self, i: int) -> None:  # under the lock
        st = self.state
        st.hashes[i] = 0
        st.header[_ENTRIES] -= 1

    def sweep(self, *, now: float) -> int:
        """Forget entries idle past ``idle_s`` among the next ``STICKY_SWEEP_SLOTS`` slots (round the table)."""
        st = self.state
        if st.header[_ENTRIES] <= 0:
            return 0  # the usual case: no key displaced anywhere in the process
        start = self._cursor
        stop = min(start + limits.STICKY_SWEEP_SLOTS, st.capacity)
        self._cursor = stop % st.capacity
        hashes, lasts, idle = st.hashes, st.lasts, st.idle_s
        row = hashes[start:stop].tolist()  # read in C; only the slots in use are looked at in Python
        stale = [start + k for k, h in enumerate(row) if h != 0 and now - lasts[start + k] >= idle]
        if not stale:
            return 0
        n = 0
        with st.lock:
            for i in stale:
                if hashes[i] != 0 and now - lasts[i] >= idle:
                    self._clear(i)
                    n += 1
            st.header[_EXPIRIES] += n
        return n

    def counts(self) -> StickyCounts:
        return self.state.counts()


def shared_json(group: SharedGroup | None, workers: int, *, now: float) -> dict[str, Any]:
    """The snapshot's ``shared``: what the workers of this process share, and how fresh the sums are."""
    if group is None:
        return {"workers": workers, "healthMarks": False, "sticky": False, "overrides": False, "counters": "worker"}
    st = group.state
    sums = group.totals_sums()
    ages = [max(0.0, now - t) if t > 0 else None for t in st.stamps.tolist()]
    return {"workers": workers, "healthMarks": True, "sticky": True, "overrides": True, "counters": "summed",
            "countersAge_s": ages, "acceptedPerWorker": sums[1] if sums is not None else [],
            "serverVersionPerWorker": sums[2] if sums is not None else [],
            "slots": {"used": st.in_use(), "capacity": st.member_slots}, "unsharedMembers": st.unshared()}


def summed_snapshot(group: SharedGroup, snap: Any) -> Any:
    """A worker's :class:`~balancedesk.core.proxy.contract.Snapshot` with the process's counters: every
    member's active, total and bytes, the shares, and the totals summed over the workers' rows."""
    members = []
    sums = {m.member_id: group.member_sums(m.member_id) for m in snap.members}
    total = sum(s[1] for s in sums.values() if s is not None)
    for m in snap.members:
        s = sums[m.member_id]
        if s is None:
            members.append(m)
            continue
        members.append(dataclasses.replace(m, active=s[0], total=s[1], bytes_in=s[3], bytes_out=s[4],
                                           actual_share=(s[1] / total) if total else 0.0))
    got = group.totals_sums()
    totals = dict(snap.totals)
    if got is not None:
        t = got[0]
        totals.update(accepted=t[0], active=t[1], refused=t[2], failed=t[3])
    return dataclasses.replace(snap, members=tuple(members), totals=totals)
