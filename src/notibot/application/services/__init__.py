"""Use-case services. Each takes its ports in the constructor; none imports an adapter."""

from notibot.application.services.auth import AuthService, TokenPair
from notibot.application.services.customers import CustomerService
from notibot.application.services.health import HealthService
from notibot.application.services.jobs import JobContext, JobHandler, JobRunner, JobService

__all__ = [
    "AuthService", "CustomerService", "HealthService", "JobContext", "JobHandler", "JobRunner",
    "JobService", "TokenPair",
]
