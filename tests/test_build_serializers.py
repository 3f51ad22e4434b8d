"""The build submission's text fields: one DRF serializer, fatbuildrctl's one-sentence answers."""

import pytest
from django.http import QueryDict

from builds.api.serializers import BuildSubmissionSerializer
from builds.services import BuildRequest
from fatbuildr_site.exceptions import flatten_detail

FIELDS = {
    "format": "deb",
    "distribution": "bookworm",
    "architectures": "x86_64, aarch64,x86_64",
    "derivative": "main",
    "artifact": "hello",
    "user_name": "John Doe",
    "user_email": "john.doe@example.org",
    "message": "",
}


def form(**overrides: str | list[str] | None) -> QueryDict:
    """A multipart form as Django parses it: FIELDS with *overrides* (None leaves one out)."""
    data = QueryDict(mutable=True)
    for name, value in {**FIELDS, **overrides}.items():
        if value is not None:
            data.setlist(name, value if isinstance(value, list) else [value])
    return data


def refusal(**overrides: str | list[str] | None) -> str:
    """The Error object message the handler makes of the serializer's refusal."""
    serializer = BuildSubmissionSerializer(data=form(**overrides))
    assert not serializer.is_valid()
    return flatten_detail(serializer.errors)


def test_valid_fields_are_the_service_build_request():
    serializer = BuildSubmissionSerializer(data=form(user_name=" John Doe "))
    assert serializer.is_valid(), serializer.errors
    assert BuildRequest(**serializer.validated_data) == BuildRequest(
        format="deb",
        distribution="bookworm",
        derivative="main",
        artifact="hello",
        architectures=["x86_64", "aarch64"],
        # Taken as sent: nothing is trimmed.
        author=" John Doe ",
        email="john.doe@example.org",
        message="",
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # A field sent twice comes first, whatever else is wrong.
        ({"format": None, "message": ["a", "b"]}, "Field message sent more than once"),
        # Then each field in fatbuildrctl's order: missing, unstorable, too long.
        ({"format": None, "distribution": None}, "Missing field format"),
        ({"format": "deb\x00", "artifact": None}, "Field format holds a NUL or invalid character"),
        ({"artifact": "\ud800" * 300}, "Field artifact holds a NUL or invalid character"),
        (
            {"artifact": "a" * 256, "message": "\x00"},
            "Field artifact is longer than 255 characters",
        ),
        # Then what the fields mean, once every field is present and storable.
        ({"user_name": "a\nb", "message": None}, "Missing field message"),
        ({"user_email": "a\tb", "artifact": "../x"}, "Field user_email holds a control character"),
        ({"artifact": "../x", "architectures": ","}, "Invalid artifact name ../x"),
        ({"architectures": "x86_64,,"}, "Invalid architectures list x86_64,,"),
    ],
)
def test_the_first_refusal_is_the_answer(overrides, message):
    assert refusal(**overrides) == message


def test_an_empty_message_is_a_message_but_an_empty_field_is_missing():
    assert BuildSubmissionSerializer(data=form(message="")).is_valid()
    assert refusal(derivative="") == "Missing field derivative"
