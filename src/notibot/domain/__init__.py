"""The domain core of notibot: entities, value objects, rules and errors.

Standard library only; nothing here performs I/O.
"""

from notibot.domain.campaign import (
    Campaign,
    CampaignContent,
    Channel,
    Delivery,
    DeliveryStatus,
)
from notibot.domain.conversation import Conversation, Message, MessageRole
from notibot.domain.customer import Customer
from notibot.domain.errors import (
    AuthenticationFailed,
    Conflict,
    DeliveryFailed,
    FileTooLarge,
    InvalidInput,
    InvalidTransition,
    JobCancelled,
    LLMUnavailable,
    NotFound,
    NotibotError,
    PermissionDenied,
    ServiceUnavailable,
    UnsupportedFile,
)
from notibot.domain.job import Job, JobError, JobKind, JobStatus
from notibot.domain.prompt import PromptKind, PromptTemplate, PromptVariant
from notibot.domain.user import Role, User

__all__ = [
    "AuthenticationFailed", "Campaign", "CampaignContent", "Channel", "Conflict",
    "Conversation", "Customer", "Delivery", "DeliveryFailed", "DeliveryStatus",
    "FileTooLarge", "InvalidInput", "InvalidTransition", "Job", "JobCancelled", "JobError",
    "JobKind",
    "JobStatus", "LLMUnavailable", "Message", "MessageRole", "NotFound", "NotibotError",
    "PermissionDenied", "PromptKind", "PromptTemplate", "PromptVariant", "Role",
    "ServiceUnavailable", "UnsupportedFile", "User",
]
