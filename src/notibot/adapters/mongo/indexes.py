"""Collections and indexes of the MongoDB store, created at start-up by :func:`ensure_indexes`.

Indexes (name: keys, options):

``customers``
    - ``email_unique``: email; unique, partial on ``{email: {$type: "string"}}`` (customers
      without an email never collide)
    - ``phone_unique``: phone; unique, partial on ``{phone: {$type: "string"}}``
    - ``created``: created_at, _id (list order)
    - ``tags``: tags (multikey; the ``tag`` filter)
    - ``city_key``, ``country_key``, ``language_key``: the case-folded shadow fields of the
      ``city``/``country``/``language`` filters
``users``
    - ``username_key_unique``: username_key (case-folded username); unique
    - ``created``: created_at, _id
``jobs``
    - ``status_kind_created``: status, kind, created_at desc (filters of ``GET /tasks``)
    - ``created``: created_at desc, _id desc (list order)
    - ``created_by``: created_by, created_at desc
    - ``stale``: status, last_seen_at (heartbeat, else start, else creation: stale search)
``job_errors``
    - ``job_seq``: job_id, seq; unique (row errors of a job in order)
``campaigns``
    - ``name_key_unique``: name_key (case-folded name); unique
    - ``created``: created_at, _id (list order)
    - ``active_created``: active, created_at, _id (the ``active`` filter)
``deliveries``
    - ``job_customer_unique``: job_id, customer_id; unique (one delivery per job and
      customer: sending is idempotent; also serves queries by job)
    - ``job_status``: job_id, status (a job's failed deliveries, for retry)
    - ``customer_created``, ``campaign_created``, ``status_created``: customer_id /
      campaign_id / status, created_at desc (history filters)
    - ``created``: created_at desc, _id desc (history order, ``since`` of the stats)
``conversations``
    - ``customer_updated``: customer_id, updated_at desc, created_at desc, _id desc
      (a customer's conversations, most recently updated first)
``idempotency_keys``
    only ``_id`` (``"<scope>:<key>"``): unique by itself
``prompt_templates``
    - ``kind_language_name_unique``: kind, language, name_key (case-folded name); unique
      (names unique per kind and language among current templates)
    - ``kind_language_name``: kind, language, name, _id (list order and its filters)
    - ``active_lookup``: kind, language, active, updated_at desc, _id (``find_active``)
``prompt_template_versions``
    - ``template_version_unique``: template_id, version; unique (a template's earlier
      versions in order)
``uploads.files`` / ``uploads.chunks``
    GridFS bucket ``uploads``; the driver creates its own indexes on the first upload.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

from notibot.adapters.mongo.errors import translate_errors

CUSTOMERS = "customers"
USERS = "users"
JOBS = "jobs"
JOB_ERRORS = "job_errors"
#: GridFS bucket name of the upload store.
UPLOADS_BUCKET = "uploads"
CAMPAIGNS = "campaigns"
DELIVERIES = "deliveries"
CONVERSATIONS = "conversations"
IDEMPOTENCY_KEYS = "idempotency_keys"
PROMPT_TEMPLATES = "prompt_templates"
PROMPT_TEMPLATE_VERSIONS = "prompt_template_versions"

#: Unique index name -> its (first) key, to name the key of a duplicate-key error when the
#: server names only the index (servers before 4.4).
UNIQUE_INDEX_KEYS = {
    "_id_": "_id", "email_unique": "email", "phone_unique": "phone",
    "username_key_unique": "username_key",
    "name_key_unique": "name_key", "job_customer_unique": "job_id",
    "kind_language_name_unique": "kind", "template_version_unique": "template_id",
}

INDEXES: dict[str, list[IndexModel]] = {
    CUSTOMERS: [
        IndexModel([("email", ASCENDING)], name="email_unique", unique=True,
                   partialFilterExpression={"email": {"$type": "string"}}),
        IndexModel([("phone", ASCENDING)], name="phone_unique", unique=True,
                   partialFilterExpression={"phone": {"$type": "string"}}),
        IndexModel([("created_at", ASCENDING), ("_id", ASCENDING)], name="created"),
        IndexModel([("tags", ASCENDING)], name="tags"),
        IndexModel([("city_key", ASCENDING)], name="city_key"),
        IndexModel([("country_key", ASCENDING)], name="country_key"),
        IndexModel([("language_key", ASCENDING)], name="language_key"),
    ],
    USERS: [
        IndexModel([("username_key", ASCENDING)], name="username_key_unique", unique=True),
        IndexModel([("created_at", ASCENDING), ("_id", ASCENDING)], name="created"),
    ],
    JOBS: [
        IndexModel([("status", ASCENDING), ("kind", ASCENDING), ("created_at", DESCENDING)],
                   name="status_kind_created"),
        IndexModel([("created_at", DESCENDING), ("_id", DESCENDING)], name="created"),
        IndexModel([("created_by", ASCENDING), ("created_at", DESCENDING)], name="created_by"),
        IndexModel([("status", ASCENDING), ("last_seen_at", ASCENDING)], name="stale"),
    ],
    JOB_ERRORS: [
        IndexModel([("job_id", ASCENDING), ("seq", ASCENDING)], name="job_seq", unique=True),
    ],
    CAMPAIGNS: [
        IndexModel([("name_key", ASCENDING)], name="name_key_unique", unique=True),
        IndexModel([("created_at", ASCENDING), ("_id", ASCENDING)], name="created"),
        IndexModel([("active", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
                   name="active_created"),
    ],
    DELIVERIES: [
        IndexModel([("job_id", ASCENDING), ("customer_id", ASCENDING)],
                   name="job_customer_unique", unique=True),
        IndexModel([("job_id", ASCENDING), ("status", ASCENDING)], name="job_status"),
        IndexModel([("customer_id", ASCENDING), ("created_at", DESCENDING)],
                   name="customer_created"),
        IndexModel([("campaign_id", ASCENDING), ("created_at", DESCENDING)],
                   name="campaign_created"),
        IndexModel([("status", ASCENDING), ("created_at", DESCENDING)], name="status_created"),
        IndexModel([("created_at", DESCENDING), ("_id", DESCENDING)], name="created"),
    ],
    CONVERSATIONS: [
        IndexModel([("customer_id", ASCENDING), ("updated_at", DESCENDING),
                    ("created_at", DESCENDING), ("_id", DESCENDING)], name="customer_updated"),
    ],
    PROMPT_TEMPLATES: [
        IndexModel([("kind", ASCENDING), ("language", ASCENDING), ("name_key", ASCENDING)],
                   name="kind_language_name_unique", unique=True),
        IndexModel([("kind", ASCENDING), ("language", ASCENDING), ("name", ASCENDING),
                    ("_id", ASCENDING)], name="kind_language_name"),
        IndexModel([("kind", ASCENDING), ("language", ASCENDING), ("active", ASCENDING),
                    ("updated_at", DESCENDING), ("_id", ASCENDING)], name="active_lookup"),
    ],
    PROMPT_TEMPLATE_VERSIONS: [
        IndexModel([("template_id", ASCENDING), ("version", ASCENDING)],
                   name="template_version_unique", unique=True),
    ],
}


async def ensure_indexes(database: Any) -> dict[str, list[str]]:
    """Create every index of :data:`INDEXES` (idempotent: existing ones are kept). Call it
    once at start-up, inside the event loop that owns the client.

    Parameters:
        database: an ``AsyncIOMotorDatabase``.

    Returns:
        collection name -> the index names created or confirmed.

    Raises:
        ServiceUnavailable: ``mongodb_unavailable`` when the server does not answer,
            ``mongodb_error`` when it refuses (e.g. an index of the same name exists with
            other options, or existing data breaks a unique index; the log says which).
    """
    created: dict[str, list[str]] = {}
    with translate_errors("create the indexes"):
        for collection, models in INDEXES.items():
            created[collection] = list(await database[collection].create_indexes(models))
    return created
