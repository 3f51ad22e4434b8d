"""The system check that reports policy groups missing from the database."""

import pytest
from django.contrib.auth.models import Group

from accounts.checks import policy_groups_exist

pytestmark = pytest.mark.usefixtures("fresh_policy_cache")


def test_vendor_group_is_created_by_migrations(db):
    assert Group.objects.filter(name="fatbuildr").exists()
    assert policy_groups_exist(databases=["default"]) == []


def test_missing_group_is_reported(db, settings, tmp_path):
    path = tmp_path / "policy.acl"
    path.write_text("[roles]\nops=@operators\n[ops]\nactions=build\n")
    settings.FATBUILDR_POLICY = path
    messages = policy_groups_exist(databases=["default"])
    assert [m.id for m in messages] == ["accounts.W001"]
    assert "'operators'" in messages[0].msg
    Group.objects.create(name="operators")
    assert policy_groups_exist(databases=["default"]) == []


def test_check_needs_the_database_tag(db):
    assert policy_groups_exist(databases=None) == []
