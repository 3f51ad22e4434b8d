"""One home for errors: domain errors carry no HTTP status, the exception handler maps them."""

import json

import pytest
from rest_framework import exceptions

from builds.services import SubmissionError, UnknownBuildTarget
from fatbuildr_site import errors
from fatbuildr_site.exceptions import DOMAIN_ERROR_STATUS, domain_error_status, error_object_handler
from instances.pipelines import UnknownDerivative
from registry.selectors import RegistryLookupError
from registry.served_paths import RegistryPathError
from tasks.engine import TaskNotCancellable


@pytest.mark.parametrize(
    ("error_class", "status"),
    [
        (RegistryLookupError, 404),
        (RegistryPathError, 404),
        (UnknownDerivative, 404),
        (UnknownBuildTarget, 404),
        (SubmissionError, 400),
        (TaskNotCancellable, 409),
    ],
)
def test_each_domain_error_has_the_status_of_its_kind(error_class, status):
    error = error_class("x")
    assert not hasattr(error, "status")
    assert domain_error_status(error) == status


def test_the_handler_answers_the_error_object_with_the_message():
    response = error_object_handler(TaskNotCancellable("task 1 is already finished"), {})
    assert response is not None
    assert response.status_code == 409
    assert response.data == {"error": "task 1 is already finished"}


def test_a_registry_path_error_never_says_why():
    response = error_object_handler(RegistryPathError("deb/conf/distributions"), {})
    assert response is not None
    assert (response.status_code, response.data) == (404, {"error": "File not found in registry"})


def test_a_domain_error_outside_the_kinds_is_a_programming_error():
    class Unmapped(errors.DomainError):
        pass

    assert Unmapped not in DOMAIN_ERROR_STATUS
    with pytest.raises(TypeError, match="no HTTP status for domain error Unmapped"):
        error_object_handler(Unmapped("?"), {})


def test_drf_errors_still_pass_through():
    response = error_object_handler(exceptions.NotFound("nothing here"), {})
    assert response is not None
    assert response.status_code == 404
    assert json.loads(json.dumps(response.data)) == {"error": "nothing here"}
