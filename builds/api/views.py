"""`POST /{instance}/build`: submit an artifact build (compat §1.5, §2.6)."""

from typing import TypeVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.utils.datastructures import MultiValueDict
from rest_framework import exceptions, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.constants import Action
from builds import services
from builds.api.serializers import BuildSubmissionSerializer
from fatbuildr_site.bodies import PayloadTooLarge
from instances.api import InstanceAPIView

SOURCE_PREFIX = "source/"


class BuildView(InstanceAPIView):
    """Queue an `artifact build` task from a multipart submission; answers `{"task": id}`.

    POST only: other methods answer 405 (after the policy check, like every
    view), where upstream's catch-all registry route answered 404.
    """

    permission_actions = {"POST": Action.BUILD}
    parser_classes = [MultiPartParser, FormParser]

    def post(self, request: Request, **kwargs) -> Response:
        check_content_length(request)
        try:
            # Text fields alone: a file sent under a text field's name is not its value.
            form, files = request.POST, request.FILES
        except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as error:
            # Django's own upload limits; outside DRF's handler they would be a bare 400.
            raise exceptions.ValidationError(f"Multipart form refused: {error}") from error
        # A field sent twice is refused before any other fault: files here, text fields
        # by the serializer.
        tarball = single_value(files, "tarball")
        sources = {
            key.removeprefix(SOURCE_PREFIX): upload
            for key in files
            if key.startswith(SOURCE_PREFIX) and (upload := single_value(files, key)) is not None
        }
        submission = BuildSubmissionSerializer(data=form)
        submission.is_valid(raise_exception=True)
        task = services.submit_build(
            self.instance,
            user=request.user.username or "anonymous",
            build=services.BuildRequest(**submission.validated_data),
            tarball=tarball,
            sources=sources,
        )
        return Response({"task": str(task.pk)})


class LengthRequired(exceptions.APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = "Build submissions need a Content-Length"


def check_content_length(request: Request) -> None:
    """Refuse an announced oversized body before a byte of it is read, and a body of unknown
    length (chunks), which Django's multipart parser would read as empty."""
    raw = request.META.get("CONTENT_LENGTH")
    if not raw:
        if request.META.get("HTTP_TRANSFER_ENCODING"):
            raise LengthRequired()
        return
    try:
        length = int(raw)
    except ValueError:
        return  # Django's multipart parser refuses it with its own error.
    limit = settings.FATBUILDR_BUILD_UPLOAD_MAX_SIZE
    if length > limit:
        raise PayloadTooLarge(f"Build submission larger than {limit} bytes")


Value = TypeVar("Value")


def single_value(values: MultiValueDict[str, Value], key: str) -> Value | None:
    """The file uploaded under *key*, None when absent, refusing a file sent twice (which one
    would be meant?); the serializer refuses a text field sent twice likewise."""
    sent = values.getlist(key)
    if len(sent) > 1:
        raise exceptions.ValidationError(f"Field {key} sent more than once")
    return sent[0] if sent else None
