"""Input serializers of the build API."""

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.settings import api_settings

from builds.services import NAME_PATTERN
from fatbuildr_site.text import is_storable

# Longest values the Task columns hold; longer ones would be a 500 at insert time.
TASK_COLUMN_LENGTH = 255


class FormTextField(serializers.CharField):
    """One text field of the multipart form fatbuildrctl sends, refused with the messages
    its users know: missing (or empty), then not storable, then too long.

    Values are taken as sent (no whitespace trimmed). `fatbuildr_site.text.is_storable`
    is the one definition of what PostgreSQL cannot store, so DRF's own NUL and
    surrogate validators are replaced by it.
    """

    def __init__(self, *, max_length: int | None = None, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, **kwargs)
        self.validators = []
        self.limit = max_length

    def bind(self, field_name: str, parent: serializers.BaseSerializer) -> None:
        super().bind(field_name, parent)
        missing = f"Missing field {field_name}"
        self.error_messages = {**self.error_messages, "required": missing, "blank": missing}

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not is_storable(value):
            raise serializers.ValidationError(
                f"Field {self.field_name} holds a NUL or invalid character"
            )
        if self.limit is not None and len(value) > self.limit:
            raise serializers.ValidationError(
                f"Field {self.field_name} is longer than {self.limit} characters"
            )
        return value


class BuildSubmissionSerializer(serializers.Serializer):
    """The text fields of `POST /{instance}/build` (compat §2.6), in fatbuildrctl's order.

    Its validated data are the keyword arguments of `builds.services.BuildRequest`.
    Upstream answers one sentence, so the refusal is the first one: a field sent
    twice, then each field in order, then what the fields mean (control
    characters, artifact name, architectures list). Every message names its
    field, so it is answered without DRF's `field: ` prefix.
    """

    format = FormTextField()
    distribution = FormTextField()
    architectures = FormTextField()
    derivative = FormTextField()
    artifact = FormTextField(max_length=TASK_COLUMN_LENGTH)
    user_name = FormTextField(source="author", max_length=TASK_COLUMN_LENGTH)
    user_email = FormTextField(source="email", max_length=TASK_COLUMN_LENGTH)
    # Upstream reads `request.form["message"]`: present but empty is a valid message.
    message = FormTextField(allow_blank=True)

    def run_validation(self, data: Any = empty) -> dict[str, Any]:
        try:
            refuse_repeated_fields(data, self.fields)
            return super().run_validation(data)
        except serializers.ValidationError as error:
            raise serializers.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: [first_message(error.detail)]}
            ) from error

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # They become changelog trailer lines: a line break would forge another entry.
        for name, key in (("user_name", "author"), ("user_email", "email")):
            if any(not character.isprintable() for character in attrs[key]):
                raise serializers.ValidationError(f"Field {name} holds a control character")
        if not NAME_PATTERN.fullmatch(attrs["artifact"]):
            raise serializers.ValidationError(f"Invalid artifact name {attrs['artifact']}")
        sent = attrs["architectures"]
        architectures = [architecture.strip() for architecture in sent.split(",")]
        if not all(architectures):
            raise serializers.ValidationError(f"Invalid architectures list {sent}")
        return {**attrs, "architectures": list(dict.fromkeys(architectures))}


def refuse_repeated_fields(data: Any, names: Mapping[str, Any]) -> None:
    """Refuse a field sent more than once (which value would be meant?): DRF would
    silently take the last one."""
    if not hasattr(data, "getlist"):
        return
    for name in names:
        if len(data.getlist(name)) > 1:
            raise serializers.ValidationError(f"Field {name} sent more than once")


def first_message(detail: Any) -> str:
    """The first message of a DRF error detail (a string, list or mapping)."""
    if isinstance(detail, Mapping):
        return first_message(next(iter(detail.values())))
    if isinstance(detail, (list, tuple)):
        return first_message(detail[0])
    return str(detail)
