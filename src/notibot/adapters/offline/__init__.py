"""The offline ChatModel: deterministic answers from the request's facts, no AI model, no
network (the embedded default of NOTIBOT_LLM=offline)."""

from notibot.adapters.offline.model import MAX_LISTED, OfflineChatModel, compose_reply

__all__ = ["MAX_LISTED", "OfflineChatModel", "compose_reply"]
