"""Views declare the policy action of each HTTP method; the one permission class reads it."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from accounts.constants import Action
from accounts.permissions import required_action
from instances.api import InstanceAPIView
from registry.api.views import ArtifactView

ACTIONS = {"GET": Action.VIEW_REGISTRY, "DELETE": Action.EDIT_REGISTRY}


@pytest.mark.parametrize(
    ("method", "action"),
    [
        ("GET", Action.VIEW_REGISTRY),
        ("DELETE", Action.EDIT_REGISTRY),
        # HEAD needs what GET needs.
        ("HEAD", Action.VIEW_REGISTRY),
        # Unmapped methods need the first action: the policy answers before the 405.
        ("OPTIONS", Action.VIEW_REGISTRY),
        ("PUT", Action.VIEW_REGISTRY),
    ],
)
def test_required_action_per_method(method, action):
    assert required_action(ACTIONS, method) == action


def test_head_falls_back_to_get_even_when_get_is_not_first():
    assert required_action({"POST": Action.BUILD, "GET": Action.VIEW_TASK}, "HEAD") == (
        Action.VIEW_TASK
    )


def test_a_view_without_actions_is_public():
    assert required_action({}, "GET") is None


def test_artifact_view_declares_get_and_delete():
    assert ArtifactView.permission_actions == ACTIONS


@pytest.mark.parametrize("method", ["get", "Get", "FETCH"])
def test_a_misspelt_method_is_refused_at_import(method):
    with pytest.raises(ImproperlyConfigured, match="is not an HTTP method name"):
        type("Misspelt", (InstanceAPIView,), {"permission_actions": {method: Action.VIEW_TASK}})
