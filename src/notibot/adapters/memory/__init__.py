"""In-memory adapters: the embedded default and the fakes for tests.

They are thread-safe (a ``threading.Lock`` per store: a worker may run in another thread) and
store copies, so a caller that changes an entity without saving it changes nothing stored.
"""

from notibot.adapters.memory.campaigns import (
    MemoryCampaignRepository,
    MemoryConversationRepository,
    MemoryDeliveryRepository,
    MemoryIdempotencyStore,
)
from notibot.adapters.memory.health import MemoryStoreHealth
from notibot.adapters.memory.job_queue import InlineJobQueue
from notibot.adapters.memory.prompts import MemoryPromptTemplateRepository
from notibot.adapters.memory.repositories import (
    MemoryCustomerRepository,
    MemoryJobRepository,
    MemoryUserRepository,
)
from notibot.adapters.memory.short_term import MemoryShortTermMemory
from notibot.adapters.memory.uploads import MemoryUploadStore

__all__ = [
    "InlineJobQueue", "MemoryCustomerRepository", "MemoryJobRepository", "MemoryStoreHealth",
    "MemoryUploadStore", "MemoryUserRepository",
]
__all__ += [
    "MemoryCampaignRepository", "MemoryConversationRepository", "MemoryDeliveryRepository",
    "MemoryIdempotencyStore",
]
__all__ += ["MemoryShortTermMemory"]
__all__ += ["MemoryPromptTemplateRepository"]
