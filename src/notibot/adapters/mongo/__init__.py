"""MongoDB adapters (motor): repositories, the GridFS upload store and the readiness check.

Wiring, inside the event loop that will use them (motor clients belong to one loop)::

    factory = MongoClientFactory(settings.mongodb_url, settings.mongodb_db)
    db = factory.database
    await ensure_indexes(db)                  # at start-up; idempotent
    customers = MongoCustomerRepository(db)
    users = MongoUserRepository(db)
    jobs = MongoJobRepository(db)
    uploads = MongoUploadStore(db)
    health = MongoHealthCheck(db)             # name "mongodb"
    ...
    await factory.close()

or, as a dependency-injector resource: ``providers.Resource(database_resource, url, name)``
(creates the indexes and closes the client at shutdown).

Campaign adapters (same wiring): ``MongoCampaignRepository(db)``,
``MongoDeliveryRepository(db)``, ``MongoConversationRepository(db)``,
``MongoIdempotencyStore(db)``; collections ``campaigns``, ``deliveries``, ``conversations``,
``idempotency_keys`` (shapes in :mod:`notibot.adapters.mongo.campaign_mappers`).

Prompt templates (same wiring): ``MongoPromptTemplateRepository(db)``; collections
``prompt_templates`` (current versions) and ``prompt_template_versions`` (earlier versions),
shapes in :mod:`notibot.adapters.mongo.prompt_mappers`.

Collections: ``customers``, ``users``, ``jobs``, ``job_errors``, GridFS bucket ``uploads``;
the indexes are listed in :mod:`notibot.adapters.mongo.indexes`, the document shapes in
:mod:`notibot.adapters.mongo.mappers`. Driver errors become ``ServiceUnavailable``
(``mongodb_unavailable``, ``mongodb_error``), ``Conflict`` or ``NotFound``
(:mod:`notibot.adapters.mongo.errors`).
"""

from notibot.adapters.mongo.campaigns import (
    MongoCampaignRepository,
    MongoConversationRepository,
    MongoDeliveryRepository,
    MongoIdempotencyStore,
)
from notibot.adapters.mongo.client import (
    DEFAULT_SERVER_SELECTION_TIMEOUT_MS,
    LazyCollection,
    LazyDatabase,
    MongoClientFactory,
    create_client,
    database_resource,
    get_database,
    open_database,
)
from notibot.adapters.mongo.errors import ERROR_CODE, UNAVAILABLE_CODE, translate_errors
from notibot.adapters.mongo.health import MongoHealthCheck
from notibot.adapters.mongo.indexes import INDEXES, ensure_indexes
from notibot.adapters.mongo.mappers import (
    customer_to_document,
    document_to_customer,
    document_to_job,
    document_to_job_error,
    document_to_user,
    job_error_to_document,
    job_to_document,
    user_to_document,
)
from notibot.adapters.mongo.prompts import MongoPromptTemplateRepository
from notibot.adapters.mongo.repositories import (
    MongoCustomerRepository,
    MongoJobRepository,
    MongoUserRepository,
)
from notibot.adapters.mongo.uploads import MongoUploadStore

__all__ = [
    "DEFAULT_SERVER_SELECTION_TIMEOUT_MS", "ERROR_CODE", "INDEXES", "UNAVAILABLE_CODE",
    "LazyCollection", "LazyDatabase",
    "MongoClientFactory", "MongoCustomerRepository", "MongoHealthCheck", "MongoJobRepository",
    "MongoUploadStore", "MongoUserRepository", "create_client", "customer_to_document",
    "database_resource", "document_to_customer", "document_to_job", "document_to_job_error",
    "document_to_user", "ensure_indexes", "get_database", "job_error_to_document",
    "job_to_document", "open_database", "translate_errors", "user_to_document",
]
__all__ += [
    "MongoCampaignRepository", "MongoConversationRepository", "MongoDeliveryRepository",
    "MongoIdempotencyStore",
]
__all__ += ["MongoPromptTemplateRepository"]
