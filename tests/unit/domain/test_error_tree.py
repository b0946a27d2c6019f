"""The one error tree: classes, codes and details."""

from __future__ import annotations

import pytest

from notibot.domain import (
    AuthenticationFailed,
    Conflict,
    DeliveryFailed,
    InvalidInput,
    InvalidTransition,
    JobCancelled,
    LLMUnavailable,
    NotFound,
    NotibotError,
    PermissionDenied,
    ServiceUnavailable,
)


@pytest.mark.parametrize(
    ("cls", "parent", "code"),
    [
        (NotibotError, Exception, "error"),
        (Conflict, NotibotError, "conflict"),
        (InvalidInput, NotibotError, "invalid_input"),
        (InvalidTransition, Conflict, "invalid_transition"),
        (PermissionDenied, NotibotError, "permission_denied"),
        (AuthenticationFailed, NotibotError, "authentication_failed"),
        (ServiceUnavailable, NotibotError, "service_unavailable"),
        (LLMUnavailable, ServiceUnavailable, "llm_unavailable"),
        (JobCancelled, NotibotError, "job_cancelled"),
    ],
)
def test_each_class_has_its_parent_and_default_code(
    cls: type[NotibotError], parent: type[Exception], code: str
) -> None:
    error = cls("something happened")

    assert isinstance(error, parent)
    assert error.code == code
    assert error.message == "something happened"
    assert str(error) == "something happened"
    assert error.details is None


def test_code_and_details_can_be_given() -> None:
    error = InvalidInput("bad email", code="invalid_email", details={"field": "email"})

    assert error.code == "invalid_email"
    assert error.details == {"field": "email"}
    assert repr(error) == "InvalidInput(code='invalid_email', message='bad email')"


@pytest.mark.parametrize(
    ("entity", "code"),
    [("customer", "customer_not_found"), ("job", "job_not_found"),
     ("prompt_template", "prompt_template_not_found")],
)
def test_not_found_code_names_the_entity(entity: str, code: str) -> None:
    error = NotFound(entity, "x1")

    assert isinstance(error, NotibotError)
    assert error.code == code
    assert error.details == {"entity": entity, "key": "x1"}
    assert (error.entity, error.key) == (entity, "x1")


def test_not_found_has_a_readable_default_message() -> None:
    assert NotFound("prompt_template", 42).message == "prompt template 42 not found"
    assert NotFound("user", "u1", message="no such user").message == "no such user"


def test_delivery_failed_says_whether_it_is_transient() -> None:
    transient = DeliveryFailed("421 busy", transient=True)
    permanent = DeliveryFailed("550 no such user", transient=False, code="smtp_rejected")

    assert isinstance(transient, ServiceUnavailable)
    assert transient.code == "delivery_failed"
    assert (transient.transient, permanent.transient) == (True, False)
    assert permanent.code == "smtp_rejected"
