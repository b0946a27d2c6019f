"""MongoDB repositories (motor): customers, users, jobs (with their row errors).

Each repository takes an ``AsyncIOMotorDatabase`` of the running loop's client and uses the
collections and indexes of :mod:`notibot.adapters.mongo.indexes` (created at start-up by
``ensure_indexes``); uniqueness is the unique indexes' job, so it holds across processes.
Semantics are those of the in-memory adapters (the contract suites check both). Every method
raises ``ServiceUnavailable`` (``mongodb_unavailable`` / ``mongodb_error``) when MongoDB fails;
no pymongo exception escapes.
"""

from __future__ import annotations

import builtins
import logging
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, InsertOne, ReplaceOne, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from notibot.adapters.mongo.errors import duplicate_key_field, translate_errors
from notibot.adapters.mongo.indexes import CUSTOMERS, JOB_ERRORS, JOBS, UNIQUE_INDEX_KEYS, USERS
from notibot.adapters.mongo.mappers import (
    customer_to_document,
    document_to_customer,
    document_to_job,
    document_to_job_error,
    document_to_user,
    fold,
    job_error_to_document,
    job_to_document,
    user_to_document,
    username_key,
)
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
from notibot.domain import (
    Conflict,
    Customer,
    Job,
    JobError,
    JobStatus,
    NotFound,
    ServiceUnavailable,
    User,
)

log = logging.getLogger("notibot.adapters.mongo")

#: Writes per ``bulk_write`` call and values per ``$in`` query.
DEFAULT_BATCH_SIZE = 1000

_DUPLICATE_KEY = 11000
_CUSTOMER_ORDER = [("created_at", ASCENDING), ("_id", ASCENDING)]
_USER_ORDER = [("created_at", ASCENDING), ("_id", ASCENDING)]
_JOB_ORDER = [("created_at", DESCENDING), ("_id", DESCENDING)]


async def _page_of(collection: Any, query: dict[str, Any], order: list[tuple[str, int]],
                   limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The documents of one page and the total matching ``query``."""
    total = await collection.count_documents(query)
    if limit <= 0 or offset >= total:
        return [], total
    cursor = collection.find(query).sort(order).skip(max(0, offset)).limit(limit)
    return await cursor.to_list(length=None), total


def _batches(values: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


# -- customers -------------------------------------------------------------------------------


def customer_query(f: CustomerFilter) -> dict[str, Any]:
    """The MongoDB query of a customer filter: ``tag`` equality on the lower-cased tags,
    ``city``/``country``/``language`` equality on the case-folded shadow fields, ``q`` a
    case-insensitive substring (escaped regex) of full_name, email or phone."""
    query: dict[str, Any] = {}
    if f.tag:
        query["tags"] = f.tag.strip().lower()
    for name in ("city", "country", "language"):
        value = getattr(f, name)
        if value is not None:
            query[f"{name}_key"] = fold(value)
    if f.subscribed is not None:
        query["subscribed"] = f.subscribed
    if f.q:
        pattern = {"$regex": re.escape(f.q), "$options": "i"}
        query["$or"] = [{"full_name": pattern}, {"email": pattern}, {"phone": pattern}]
    return query


class MongoCustomerRepository(CustomerRepository):
    """Customers in the ``customers`` collection.

    Uniqueness of email and phone is enforced by the partial unique indexes
    ``email_unique``/``phone_unique``; a refused write becomes Conflict
    (``customer_conflict``, details ``field``, ``value``, ``existing_id``).

    Parameters:
        database: an ``AsyncIOMotorDatabase``.
        batch_size: writes per ``bulk_write`` and values per ``$in`` query.
    """

    def __init__(self, database: Any, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self._customers = database[CUSTOMERS]
        self._batch_size = max(1, batch_size)

    # -- conflicts ---------------------------------------------------------------------------

    async def _owners(self, field: str, values: Sequence[str]) -> dict[str, str]:
        """value -> id of the customer holding it (``field`` is ``email``, ``phone`` or
        ``_id``)."""
        owners: dict[str, str] = {}
        unique = list(dict.fromkeys(v for v in values if v))
        for batch in _batches(unique, self._batch_size):
            cursor = self._customers.find({field: {"$in": list(batch)}}, {field: 1})
            async for doc in cursor:
                owners[doc[field]] = doc["_id"]
        return owners

    async def _explain(
        self, failed: list[tuple[Customer, bool, str | None]]
    ) -> dict[str, tuple[str, str | None, str | None]]:
        """For writes refused by a unique index: customer id -> (field, value, owner id).

        ``failed`` holds (customer, is_create, field hinted by the error). The hint is
        checked against the data (the owner may be gone, or the hint wrong); the first field
        whose value another customer holds wins, in the order hint, id, email, phone.
        """
        ids = await self._owners("_id", [c.id for c, creating, _ in failed if creating])
        emails = await self._owners("email", [c.email for c, _, _ in failed if c.email])
        phones = await self._owners("phone", [c.phone for c, _, _ in failed if c.phone])
        explained: dict[str, tuple[str, str | None, str | None]] = {}
        for customer, creating, hint in failed:
            order = ["id", "email", "phone"] if creating else ["email", "phone"]
            if hint in order:
                order.remove(hint)
                order.insert(0, hint)
            found: tuple[str, str | None, str | None] | None = None
            for field in order:
                if field == "id":
                    owner = ids.get(customer.id)
                    value: str | None = customer.id
                else:
                    value = getattr(customer, field)
                    owner = (emails if field == "email" else phones).get(value) if value else None
                    if owner == customer.id:
                        owner = None
                if owner is not None:
                    found = (field, value, owner)
                    break
            if found is None:  # the holder is gone already: report what the server said
                field = hint if hint in order else next(
                    (f for f in order if f == "id" or getattr(customer, f)), order[0])
                value = customer.id if field == "id" else getattr(customer, field)
                found = (field, value, None)
            explained[customer.id] = found
        return explained

    async def _conflict(self, customer: Customer, exc: DuplicateKeyError,
                        *, creating: bool) -> Conflict:
        hint = duplicate_key_field(exc.details or {}, str(exc), UNIQUE_INDEX_KEYS)
        hint = "id" if hint == "_id" else hint
        field, value, owner = (await self._explain([(customer, creating, hint)]))[customer.id]
        if field == "id":
            return Conflict(f"customer {customer.id} exists", code="customer_conflict",
                            details={"field": "id", "existing_id": customer.id})
        return Conflict(f"another customer already has {field} {value}",
                        code="customer_conflict",
                        details={"field": field, "value": value, "existing_id": owner})

    # -- single writes -----------------------------------------------------------------------

    async def add(self, customer: Customer) -> None:
        document = customer_to_document(customer)
        with translate_errors("add a customer", conflict_code="customer_conflict"):
            try:
                await self._customers.insert_one(document)
            except DuplicateKeyError as exc:
                raise await self._conflict(customer, exc, creating=True) from exc

    async def get(self, customer_id: str) -> Customer:
        with translate_errors("read a customer"):
            document = await self._customers.find_one({"_id": customer_id})
        if document is None:
            raise NotFound("customer", customer_id)
        return document_to_customer(document)

    async def update(self, customer: Customer) -> None:
        document = customer_to_document(customer)
        with translate_errors("update a customer", conflict_code="customer_conflict"):
            try:
                result = await self._customers.replace_one({"_id": customer.id}, document)
            except DuplicateKeyError as exc:
                raise await self._conflict(customer, exc, creating=False) from exc
        if result.matched_count == 0:
            raise NotFound("customer", customer.id)

    async def delete(self, customer_id: str) -> None:
        with translate_errors("delete a customer"):
            result = await self._customers.delete_one({"_id": customer_id})
        if result.deleted_count == 0:
            raise NotFound("customer", customer_id)

    # -- reads -------------------------------------------------------------------------------

    async def _find_one(self, query: dict[str, Any]) -> Customer | None:
        with translate_errors("find a customer"):
            document = await self._customers.find_one(query)
        return document_to_customer(document) if document is not None else None

    async def find_by_email(self, email: str) -> Customer | None:
        return await self._find_one({"email": email.lower()})

    async def find_by_phone(self, phone: str) -> Customer | None:
        return await self._find_one({"phone": phone})

    async def list(self, filter: CustomerFilter, *, limit: int, offset: int) -> Page[Customer]:
        with translate_errors("list customers"):
            documents, total = await _page_of(self._customers, customer_query(filter),
                                              _CUSTOMER_ORDER, limit, offset)
        return Page(items=[document_to_customer(d) for d in documents], total=total,
                    limit=limit, offset=offset)

    async def _find_many(self, field: str, values: Sequence[str]) -> dict[str, Customer]:
        found: dict[str, Customer] = {}
        unique = list(dict.fromkeys(v for v in values if v))
        with translate_errors("find customers"):
            for batch in _batches(unique, self._batch_size):
                async for document in self._customers.find({field: {"$in": list(batch)}}):
                    found[document[field]] = document_to_customer(document)
        return found

    async def find_by_emails(self, emails: Sequence[str]) -> dict[str, Customer]:
        return await self._find_many("email", emails)

    async def find_by_phones(self, phones: Sequence[str]) -> dict[str, Customer]:
        return await self._find_many("phone", phones)

    async def count(self) -> int:
        with translate_errors("count customers"):
            return await self._customers.count_documents({})

    # -- bulk --------------------------------------------------------------------------------

    async def bulk_upsert(
        self, creates: Sequence[Customer], updates: Sequence[Customer]
    ) -> BulkWriteResult:
        """Insert ``creates`` and replace ``updates`` with unordered ``bulk_write`` calls of
        at most ``batch_size`` writes. Writes refused by a unique index (email, phone, id)
        and replacements whose customer is gone are reported in ``rejected``, never raised.

        Raises:
            ServiceUnavailable: MongoDB failed (a batch may have been written partly;
                running the same upsert again is harmless).
        """
        writes = [(c, True) for c in creates] + [(c, False) for c in updates]
        created = updated = 0
        rejected: dict[str, str] = {}
        with translate_errors("write customers in bulk"):
            for batch in _batches(writes, self._batch_size):
                inserted, matched, refused = await self._write_batch(batch)
                created += inserted
                updated += matched
                rejected.update(refused)
        return BulkWriteResult(created=created, updated=updated, rejected=rejected)

    async def _write_batch(
        self, batch: Sequence[tuple[Customer, bool]]
    ) -> tuple[int, int, dict[str, str]]:
        requests = [
            InsertOne(customer_to_document(c)) if creating
            else ReplaceOne({"_id": c.id}, customer_to_document(c))
            for c, creating in batch
        ]
        try:
            raw = (await self._customers.bulk_write(requests, ordered=False)).bulk_api_result
        except BulkWriteError as exc:
            raw = exc.details
        if raw.get("writeConcernErrors"):
            log.error("bulk customer write not acknowledged as asked: %r",
                      raw["writeConcernErrors"])
            raise ServiceUnavailable("MongoDB did not confirm the bulk write",
                                     code="mongodb_unavailable")
        refused: dict[str, str] = {}
        duplicates: list[tuple[Customer, bool, str | None]] = []
        for error in raw.get("writeErrors") or []:
            customer, creating = batch[error["index"]]
            if error.get("code") == _DUPLICATE_KEY:
                hint = duplicate_key_field(error, index_keys=UNIQUE_INDEX_KEYS)
                duplicates.append((customer, creating, "id" if hint == "_id" else hint))
            else:
                log.warning("customer %s not written: %s", customer.id, error.get("errmsg"))
                refused[customer.id] = f"could not be written: {error.get('errmsg')}"
        if duplicates:
            for cid, (field, value, owner) in (await self._explain(duplicates)).items():
                if field == "id":
                    refused[cid] = f"customer id {cid} exists"
                elif owner is not None:
                    refused[cid] = f"{field} {value} belongs to customer {owner}"
                else:
                    refused[cid] = f"{field} {value} is taken"
        replaced = [c.id for c, creating in batch if not creating and c.id not in refused]
        matched = int(raw.get("nMatched") or 0)
        if matched < len(replaced):  # some customers to replace are gone
            existing = await self._owners("_id", replaced)
            for cid in replaced:
                if cid not in existing:
                    refused[cid] = f"customer {cid} no longer exists"
        return int(raw.get("nInserted") or 0), matched, refused


# -- users -----------------------------------------------------------------------------------


class MongoUserRepository(UserRepository):
    """Users in the ``users`` collection; usernames are unique case-insensitively through the
    unique index on the case-folded ``username_key``.

    Parameters:
        database: an ``AsyncIOMotorDatabase``.
    """

    def __init__(self, database: Any) -> None:
        self._users = database[USERS]

    def _taken(self, user: User) -> Conflict:
        return Conflict(f"username {user.username!r} is taken", code="username_taken",
                        details={"field": "username"})

    async def add(self, user: User) -> None:
        document = user_to_document(user)
        with translate_errors("add a user", conflict_code="username_taken"):
            try:
                await self._users.insert_one(document)
            except DuplicateKeyError as exc:
                hint = duplicate_key_field(exc.details or {}, str(exc), UNIQUE_INDEX_KEYS)
                if hint != "username_key" and await self._users.find_one(
                        {"_id": user.id}, {"_id": 1}) is not None:
                    raise Conflict(f"user {user.id} exists", code="user_conflict",
                                   details={"field": "id"}) from exc
                raise self._taken(user) from exc

    async def get(self, user_id: str) -> User:
        with translate_errors("read a user"):
            document = await self._users.find_one({"_id": user_id})
        if document is None:
            raise NotFound("user", user_id)
        return document_to_user(document)

    async def get_by_username(self, username: str) -> User | None:
        with translate_errors("find a user"):
            document = await self._users.find_one({"username_key": username_key(username)})
        return document_to_user(document) if document is not None else None

    async def update(self, user: User) -> None:
        document = user_to_document(user)
        with translate_errors("update a user", conflict_code="username_taken"):
            try:
                result = await self._users.replace_one({"_id": user.id}, document)
            except DuplicateKeyError as exc:
                raise self._taken(user) from exc
        if result.matched_count == 0:
            raise NotFound("user", user.id)

    async def list(self, *, limit: int, offset: int) -> Page[User]:
        with translate_errors("list users"):
            documents, total = await _page_of(self._users, {}, _USER_ORDER, limit, offset)
        return Page(items=[document_to_user(d) for d in documents], total=total, limit=limit,
                    offset=offset)

    async def count_admins(self) -> int:
        with translate_errors("count admins"):
            return await self._users.count_documents({"role": "admin", "active": True})


# -- jobs ------------------------------------------------------------------------------------


def job_query(f: JobFilter) -> dict[str, Any]:
    """The MongoDB query of a job filter (equality on status, kind, created_by)."""
    query: dict[str, Any] = {}
    if f.status is not None:
        query["status"] = f.status.value
    if f.kind is not None:
        query["kind"] = f.kind
    if f.created_by is not None:
        query["created_by"] = f.created_by
    return query


class MongoJobRepository(JobRepository):
    """Jobs in the ``jobs`` collection, their row errors in ``job_errors``.

    - :meth:`update` is a single ``update_one`` filtered on the id (and the expected status:
      compare-and-set); it ``$set``s every field but leaves ``cancel_requested`` out when the
      job says False, so a stored True is never reset.
    - :meth:`add_errors` reserves a range of sequence numbers atomically on the job document
      (``$inc`` of ``error_seq``, which also proves the job exists) and inserts one
      ``job_errors`` document per error; :meth:`list_errors` reads them by (job_id, seq).

    Parameters:
        database: an ``AsyncIOMotorDatabase``.
    """

    def __init__(self, database: Any) -> None:
        self._jobs = database[JOBS]
        self._errors = database[JOB_ERRORS]

    async def _exists(self, job_id: str) -> bool:
        return await self._jobs.find_one({"_id": job_id}, {"_id": 1}) is not None

    async def add(self, job: Job) -> None:
        document = job_to_document(job)
        with translate_errors("add a job", conflict_code="job_conflict"):
            try:
                await self._jobs.insert_one(document)
            except DuplicateKeyError as exc:
                raise Conflict(f"job {job.id} exists", code="job_conflict",
                               details={"field": "id", "existing_id": job.id}) from exc

    async def get(self, job_id: str) -> Job:
        with translate_errors("read a job"):
            document = await self._jobs.find_one({"_id": job_id}, {"error_seq": 0})
        if document is None:
            raise NotFound("job", job_id)
        return document_to_job(document)

    async def update(self, job: Job, *, expected_status: JobStatus | None = None) -> bool:
        document = job_to_document(job)
        del document["_id"]
        if not job.cancel_requested:
            del document["cancel_requested"]  # sticky: never write False over True
        query: dict[str, Any] = {"_id": job.id}
        if expected_status is not None:
            query["status"] = expected_status.value
        with translate_errors("update a job"):
            result = await self._jobs.update_one(query, {"$set": document})
            if result.matched_count:
                return True
            if not await self._exists(job.id):
                raise NotFound("job", job.id)
        return False

    async def request_cancel(self, job_id: str) -> bool:
        with translate_errors("request a job's cancellation"):
            result = await self._jobs.update_one(
                {"_id": job_id, "status": JobStatus.RUNNING.value},
                {"$set": {"cancel_requested": True}})
            if result.matched_count:
                return True
            if not await self._exists(job_id):
                raise NotFound("job", job_id)
        return False

    async def touch(self, job_id: str, heartbeat_at: datetime) -> None:
        with translate_errors("record a job heartbeat"):
            await self._jobs.update_one(
                {"_id": job_id},
                {"$set": {"heartbeat_at": heartbeat_at, "last_seen_at": heartbeat_at}})

    async def delete(self, job_id: str) -> None:
        with translate_errors("delete a job"):
            result = await self._jobs.delete_one({"_id": job_id})
            if result.deleted_count == 0:
                raise NotFound("job", job_id)
            await self._errors.delete_many({"job_id": job_id})

    async def list(self, filter: JobFilter, *, limit: int, offset: int) -> Page[Job]:
        with translate_errors("list jobs"):
            documents, total = await _page_of(self._jobs, job_query(filter), _JOB_ORDER,
                                              limit, offset)
        return Page(items=[document_to_job(d) for d in documents], total=total, limit=limit,
                    offset=offset)

    async def stats(self) -> JobStats:
        by_status = {s.value: 0 for s in JobStatus}
        by_kind: dict[str, int] = {}
        total = 0
        pipeline = [{"$group": {"_id": {"status": "$status", "kind": "$kind"},
                                "count": {"$sum": 1}}}]
        with translate_errors("count jobs"):
            async for row in self._jobs.aggregate(pipeline):
                status, kind, count = row["_id"]["status"], row["_id"]["kind"], row["count"]
                by_status[status] = by_status.get(status, 0) + count
                by_kind[kind] = by_kind.get(kind, 0) + count
                total += count
        return JobStats(by_status=by_status, by_kind=by_kind, total=total)

    async def find_stale(self, heartbeat_before: datetime) -> builtins.list[Job]:
        query = {"status": JobStatus.RUNNING.value, "last_seen_at": {"$lt": heartbeat_before}}
        with translate_errors("find stale jobs"):
            cursor = self._jobs.find(query, {"error_seq": 0}).sort(
                [("created_at", ASCENDING), ("_id", ASCENDING)])
            documents = await cursor.to_list(length=None)
        return [document_to_job(d) for d in documents]

    async def add_errors(self, job_id: str, errors: Sequence[JobError]) -> None:
        with translate_errors("keep job errors"):
            counter = await self._jobs.find_one_and_update(
                {"_id": job_id}, {"$inc": {"error_seq": len(errors)}},
                projection={"error_seq": 1}, return_document=ReturnDocument.AFTER)
            if counter is None:
                raise NotFound("job", job_id)
            if not errors:
                return
            first = int(counter["error_seq"]) - len(errors)
            await self._errors.insert_many(
                [{"job_id": job_id, "seq": first + i, **job_error_to_document(error)}
                 for i, error in enumerate(errors)],
                ordered=True)

    async def list_errors(self, job_id: str, *, offset: int = 0,
                          limit: int | None = None) -> builtins.list[JobError]:
        if limit is not None and limit <= 0:
            return []
        with translate_errors("read job errors"):
            cursor = self._errors.find({"job_id": job_id}, {"_id": 0, "job_id": 0}).sort(
                [("seq", ASCENDING)]).skip(max(0, offset))
            if limit is not None:
                cursor = cursor.limit(limit)
            documents = await cursor.to_list(length=None)
        return [document_to_job_error(d) for d in documents]
