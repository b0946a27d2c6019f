"""In-memory repositories."""

from __future__ import annotations

import copy
import itertools
import operator
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TypeVar

from notibot.adapters.memory.copies import copy_value
from notibot.application.ports import (
    BulkWriteResult,
    CustomerFilter,
    CustomerRepository,
    JobFilter,
    JobRepository,
    JobStats,
    Page,
    UserRepository,
)
from notibot.domain import Conflict, Customer, Job, JobError, JobStatus, NotFound, User

T = TypeVar("T")


def _page(items: list[T], limit: int, offset: int,
          copy_item: Callable[[T], T] = copy.deepcopy) -> Page[T]:
    return Page(items=[copy_item(i) for i in items[offset:offset + limit]],
                total=len(items), limit=limit, offset=offset)


def _copy_customer(customer: Customer) -> Customer:
    """A deep copy of ``customer``, several times cheaper than :func:`copy.deepcopy` (a
    campaign send pages through every customer): its fields are immutable but for ``tags``
    (strings) and ``attributes``."""
    copied = copy.copy(customer)
    copied.tags = list(customer.tags)
    copied.attributes = copy_value(customer.attributes)
    return copied


class MemoryCustomerRepository(CustomerRepository):
    """Customers in a dict, with unique indexes on email and phone. :meth:`list` sorts them
    once per change of the store (a campaign send pages through all of them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Customer] = {}
        self._by_email: dict[str, str] = {}
        self._by_phone: dict[str, str] = {}
        self._ordered: list[Customer] | None = None  # in list order; None after a change

    def _check_unique(self, customer: Customer) -> None:
        for field, index in (("email", self._by_email), ("phone", self._by_phone)):
            value = getattr(customer, field)
            owner = index.get(value) if value else None
            if owner is not None and owner != customer.id:
                raise Conflict(
                    f"another customer already has {field} {value}", code="customer_conflict",
                    details={"field": field, "value": value, "existing_id": owner},
                )

    def _index(self, customer: Customer) -> None:
        if customer.email:
            self._by_email[customer.email] = customer.id
        if customer.phone:
            self._by_phone[customer.phone] = customer.id

    def _unindex(self, customer: Customer) -> None:
        if customer.email:
            self._by_email.pop(customer.email, None)
        if customer.phone:
            self._by_phone.pop(customer.phone, None)

    async def add(self, customer: Customer) -> None:
        with self._lock:
            self._ordered = None
            if customer.id in self._by_id:
                raise Conflict(f"customer {customer.id} exists", code="customer_conflict",
                               details={"field": "id", "existing_id": customer.id})
            self._check_unique(customer)
            self._by_id[customer.id] = copy.deepcopy(customer)
            self._index(customer)

    async def get(self, customer_id: str) -> Customer:
        with self._lock:
            try:
                return _copy_customer(self._by_id[customer_id])
            except KeyError:
                raise NotFound("customer", customer_id) from None

    async def update(self, customer: Customer) -> None:
        with self._lock:
            self._ordered = None
            old = self._by_id.get(customer.id)
            if old is None:
                raise NotFound("customer", customer.id)
            self._check_unique(customer)
            self._unindex(old)
            self._by_id[customer.id] = copy.deepcopy(customer)
            self._index(customer)

    async def delete(self, customer_id: str) -> None:
        with self._lock:
            self._ordered = None
            old = self._by_id.pop(customer_id, None)
            if old is None:
                raise NotFound("customer", customer_id)
            self._unindex(old)

    def _find(self, index: dict[str, str], key: str) -> Customer | None:
        with self._lock:
            cid = index.get(key)
            return copy.deepcopy(self._by_id[cid]) if cid else None

    async def find_by_email(self, email: str) -> Customer | None:
        return self._find(self._by_email, email.lower())

    async def find_by_phone(self, phone: str) -> Customer | None:
        return self._find(self._by_phone, phone)

    async def list(self, filter: CustomerFilter, *, limit: int, offset: int) -> Page[Customer]:
        match = _customer_matcher(filter)
        with self._lock:
            ordered = self._in_order()
            found = ordered if filter == _EVERYONE else [c for c in ordered if match(c)]
            return _page(found, limit, offset, _copy_customer)

    def _in_order(self) -> list[Customer]:
        """Every customer, oldest first, then by id (with the lock held; not to be changed)."""
        if self._ordered is None:
            found = list(self._by_id.values())
            try:  # all dated, the usual case: the key is built in C
                found.sort(key=_CREATED_ID)
            except TypeError:
                # Undated customers first (as a database sorts nulls); never compare a naive
                # placeholder with aware times.
                found.sort(key=lambda c: (c.created_at is not None,
                                          c.created_at or datetime.min, c.id))
            self._ordered = found
        return self._ordered

    def _find_many(self, index: dict[str, str], keys: Iterable[str]) -> dict[str, Customer]:
        with self._lock:
            by_id = self._by_id
            # one index look-up per key, in C (the index is large, the result small)
            return {key: copy.deepcopy(by_id[index[key]]) for key in index.keys() & keys}

    async def find_by_emails(self, emails: Sequence[str]) -> dict[str, Customer]:
        keys = list(filter(None, emails))
        joined = "\n".join(keys)
        if joined.lower() != joined:  # one check for the whole list: usually lower-case
            keys = list(map(str.lower, keys))
        return self._find_many(self._by_email, keys)

    async def find_by_phones(self, phones: Sequence[str]) -> dict[str, Customer]:
        return self._find_many(self._by_phone, filter(None, phones))

    async def bulk_upsert(
        self, creates: Sequence[Customer], updates: Sequence[Customer]
    ) -> BulkWriteResult:
        rejected: dict[str, str] = {}
        created = updated = 0
        by_id = self._by_id
        with self._lock:
            self._ordered = None
            created = self._insert_all(creates, rejected)
            for customer in updates:
                old = by_id.get(customer.id)
                if old is None:
                    rejected[customer.id] = f"customer {customer.id} no longer exists"
                    continue
                try:
                    self._check_unique(customer)
                except Conflict as exc:
                    rejected[customer.id] = exc.message
                    continue
                self._unindex(old)
                by_id[customer.id] = customer
                self._index(customer)
                updated += 1
        return BulkWriteResult(created=created, updated=updated, rejected=rejected)

    def _insert_all(self, creates: Sequence[Customer], rejected: dict[str, str]) -> int:
        """Insert ``creates`` in order; one whose id, email or phone is taken (stored, or by
        an earlier create) is left out and reported in ``rejected``. Returns how many went in.

        Each index gets one ``setdefault`` per create, mapped in C: it inserts the value
        unless the key is taken. When the ids were all new (the usual case: fresh random
        ids), creates whose email and phone were free too are in; the few others are taken
        back out and decided one by one, in order, which gives the same outcome because no
        other create shares a value with them. A taken id sends the whole batch through the
        one-by-one rule.
        """
        by_id, by_email, by_phone = self._by_id, self._by_email, self._by_phone
        before = len(by_id)
        ids = list(map(_ID, creates))
        clash = any(map(operator.is_not, map(by_id.setdefault, ids, creates), creates))
        if clash or len(by_id) - before != len(creates):
            for cid in list(itertools.islice(reversed(by_id.keys()), len(by_id) - before)):
                del by_id[cid]  # the last keys are the ones just inserted
            return self._insert_each(creates, range(len(creates)), rejected)
        rows = range(len(creates))
        suspects: set[int] = set()
        for index, values in ((by_email, list(map(_EMAIL, creates))),
                              (by_phone, list(map(_PHONE, creates)))):
            keyed: Sequence[int] = rows
            keys, owners = values, ids
            if not all(values):  # only the creates with a value
                keyed = list(itertools.compress(rows, values))
                keys = list(itertools.compress(values, values))
                owners = list(itertools.compress(ids, values))
            found = map(index.setdefault, keys, owners)
            suspects.update(itertools.compress(keyed, map(operator.is_not, found, owners)))
        if not suspects:
            return len(creates)
        order = sorted(suspects)
        for i in order:  # take back what the suspects wrote (their ids are new and unique)
            customer = creates[i]
            cid, email, phone = customer.id, customer.email, customer.phone
            del by_id[cid]
            if email and by_email.get(email) is cid:
                del by_email[email]
            if phone and by_phone.get(phone) is cid:
                del by_phone[phone]
        return len(creates) - len(order) + self._insert_each(creates, order, rejected)

    def _insert_each(self, creates: Sequence[Customer], order: Iterable[int],
                     rejected: dict[str, str]) -> int:
        """Insert ``creates[i]`` for ``i`` in ``order``, one by one, checking id, email and
        phone; returns how many went in."""
        by_id, by_email, by_phone = self._by_id, self._by_email, self._by_phone
        created = 0
        for i in order:
            customer = creates[i]
            cid, email, phone = customer.id, customer.email, customer.phone
            if cid in by_id:
                rejected[cid] = f"customer id {cid} exists"
            elif email and email in by_email:
                rejected[cid] = f"email {email} belongs to customer {by_email[email]}"
            elif phone and phone in by_phone:
                rejected[cid] = f"phone {phone} belongs to customer {by_phone[phone]}"
            else:
                by_id[cid] = customer
                if email:
                    by_email[email] = cid
                if phone:
                    by_phone[phone] = cid
                created += 1
        return created

    async def count(self) -> int:
        with self._lock:
            return len(self._by_id)


_ID = operator.attrgetter("id")
_CREATED_ID = operator.attrgetter("created_at", "id")
#: The filter that matches every customer.
_EVERYONE = CustomerFilter()
_EMAIL = operator.attrgetter("email")
_PHONE = operator.attrgetter("phone")


def _customer_matcher(f: CustomerFilter) -> Callable[[Customer], bool]:
    def same(a: str | None, b: str | None) -> bool:
        return b is None or (a is not None and a.casefold() == b.casefold())

    q = f.q.casefold() if f.q else None
    tag = f.tag.strip().lower() if f.tag else None

    def match(c: Customer) -> bool:
        if tag is not None and tag not in c.tags:
            return False
        if not (same(c.city, f.city) and same(c.country, f.country)
                and same(c.language, f.language)):
            return False
        if f.subscribed is not None and c.subscribed is not f.subscribed:
            return False
        if q is not None:
            return any(q in v.casefold() for v in (c.full_name, c.email, c.phone) if v)
        return True

    return match


class MemoryUserRepository(UserRepository):
    """Users in a dict, unique by case-folded username."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, User] = {}

    def _owner(self, username: str) -> User | None:
        key = username.casefold()
        return next((u for u in self._by_id.values() if u.username.casefold() == key), None)

    async def add(self, user: User) -> None:
        with self._lock:
            if user.id in self._by_id:
                raise Conflict(f"user {user.id} exists", code="user_conflict",
                               details={"field": "id"})
            if self._owner(user.username) is not None:
                raise Conflict(f"username {user.username!r} is taken", code="username_taken",
                               details={"field": "username"})
            self._by_id[user.id] = copy.deepcopy(user)

    async def get(self, user_id: str) -> User:
        with self._lock:
            try:
                return copy.copy(self._by_id[user_id])  # every field of a User is immutable
            except KeyError:
                raise NotFound("user", user_id) from None

    async def get_by_username(self, username: str) -> User | None:
        with self._lock:
            return copy.deepcopy(self._owner(username))

    async def update(self, user: User) -> None:
        with self._lock:
            if user.id not in self._by_id:
                raise NotFound("user", user.id)
            owner = self._owner(user.username)
            if owner is not None and owner.id != user.id:
                raise Conflict(f"username {user.username!r} is taken", code="username_taken",
                               details={"field": "username"})
            self._by_id[user.id] = copy.deepcopy(user)

    async def list(self, *, limit: int, offset: int) -> Page[User]:
        with self._lock:
            users = sorted(self._by_id.values(), key=lambda u: (u.created_at, u.id))
            return _page(users, limit, offset)

    async def count_admins(self) -> int:
        with self._lock:
            return sum(1 for u in self._by_id.values() if u.is_admin and u.active)


class MemoryJobRepository(JobRepository):
    """Jobs in a dict; compare-and-set writes under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Job] = {}
        self._errors: dict[str, list[JobError]] = {}

    def _stored(self, job_id: str) -> Job:
        try:
            return self._by_id[job_id]
        except KeyError:
            raise NotFound("job", job_id) from None

    async def add(self, job: Job) -> None:
        with self._lock:
            if job.id in self._by_id:
                raise Conflict(f"job {job.id} exists", code="job_conflict")
            self._by_id[job.id] = copy.deepcopy(job)

    async def get(self, job_id: str) -> Job:
        with self._lock:
            return copy.deepcopy(self._stored(job_id))

    async def update(self, job: Job, *, expected_status: JobStatus | None = None) -> bool:
        with self._lock:
            stored = self._stored(job.id)
            if expected_status is not None and stored.status is not expected_status:
                return False
            new = copy.deepcopy(job)
            new.cancel_requested = new.cancel_requested or stored.cancel_requested
            self._by_id[job.id] = new
            return True

    async def request_cancel(self, job_id: str) -> bool:
        with self._lock:
            stored = self._stored(job_id)
            if stored.status is not JobStatus.RUNNING:
                return False
            stored.cancel_requested = True
            return True

    async def touch(self, job_id: str, heartbeat_at: datetime) -> None:
        with self._lock:
            job = self._by_id.get(job_id)
            if job is not None:
                job.heartbeat_at = heartbeat_at

    async def delete(self, job_id: str) -> None:
        with self._lock:
            self._stored(job_id)
            del self._by_id[job_id]
            self._errors.pop(job_id, None)

    async def list(self, filter: JobFilter, *, limit: int, offset: int) -> Page[Job]:
        with self._lock:
            found = [
                j for j in self._by_id.values()
                if (filter.status is None or j.status is filter.status)
                and (filter.kind is None or j.kind == filter.kind)
                and (filter.created_by is None or j.created_by == filter.created_by)
            ]
            found.sort(key=lambda j: (j.created_at, j.id), reverse=True)
            return _page(found, limit, offset)

    async def stats(self) -> JobStats:
        with self._lock:
            by_status = {s.value: 0 for s in JobStatus}
            by_status.update(Counter(j.status.value for j in self._by_id.values()))
            by_kind = dict(Counter(j.kind for j in self._by_id.values()))
            return JobStats(by_status=by_status, by_kind=by_kind, total=len(self._by_id))

    async def find_stale(self, heartbeat_before: datetime) -> list[Job]:
        with self._lock:
            return [
                copy.deepcopy(j) for j in self._by_id.values()
                if j.status is JobStatus.RUNNING
                and j.last_seen_at < heartbeat_before
            ]

    async def add_errors(self, job_id: str, errors: Sequence[JobError]) -> None:
        with self._lock:
            self._stored(job_id)
            self._errors.setdefault(job_id, []).extend(errors)  # JobError is frozen

    async def list_errors(self, job_id: str, *, offset: int = 0,
                          limit: int | None = None) -> list[JobError]:
        with self._lock:
            errors = self._errors.get(job_id, [])
            end = None if limit is None else offset + limit
            return list(errors[offset:end])
