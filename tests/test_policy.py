"""The policy file parser (compat §4) and start-up refusal of a broken policy."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from accounts.policy import Policy, PolicyError, PolicyRole, parse_policy

REPO_ROOT = Path(__file__).resolve().parent.parent
VENDOR_POLICY = REPO_ROOT / "accounts" / "policy.acl"
VIEW_ACTIONS = {"view-pipeline", "view-registry", "view-task", "view-keyring"}


def write(tmp_path: Path, text: str, name: str = "policy.acl") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def parse(tmp_path: Path, text: str) -> Policy:
    return parse_policy(write(tmp_path, text))


def policy_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        parse_policy(path)
    message = str(caught.value)
    assert str(path) in message, message
    return message


# --- Parsing -------------------------------------------------------------------------------


def test_vendor_policy_parses_to_the_upstream_roles_plus_cancellation():
    policy = parse_policy(VENDOR_POLICY)
    assert policy.path == VENDOR_POLICY
    assert policy.roles == {
        "anonymous": PolicyRole(
            name="anonymous",
            users=frozenset(),
            groups=frozenset(),
            actions=frozenset(VIEW_ACTIONS),
        ),
        "users": PolicyRole(
            name="users",
            users=frozenset(),
            groups=frozenset({"fatbuildr"}),
            actions=frozenset({"build", "edit-registry", "cancel-task"}),
        ),
    }
    assert policy.anonymous_actions == VIEW_ACTIONS
    assert policy.uses_groups


def test_members_and_actions_are_stripped(tmp_path):
    policy = parse(
        tmp_path,
        """
        [roles]
        admins = alice,  bob , @ops ,
        [admins]
        actions = build,  edit-registry ,view-task
        """,
    )
    admins = policy.roles["admins"]
    assert admins.users == {"alice", "bob"}
    assert admins.groups == {"ops"}
    assert admins.actions == {"build", "edit-registry", "view-task"}


def test_role_names_match_sections_case_insensitively(tmp_path):
    policy = parse(
        tmp_path,
        """
        [roles]
        Admins=alice
        Anonymous
        [ADMINS]
        actions=build
        [anonymous]
        actions=view-task
        """,
    )
    assert set(policy.roles) == {"admins", "anonymous"}
    assert policy.roles["admins"].actions == {"build"}
    assert policy.anonymous_actions == {"view-task"}


def test_role_inclusion_is_recursive(tmp_path):
    policy = parse(
        tmp_path,
        """
        [roles]
        anonymous
        users=@fatbuildr
        admins=alice
        [anonymous]
        actions=view-pipeline,view-registry
        [users]
        actions=@anonymous,build
        [admins]
        actions=@Users, edit-registry
        """,
    )
    assert policy.roles["users"].actions == {"view-pipeline", "view-registry", "build"}
    assert policy.roles["admins"].actions == {
        "view-pipeline",
        "view-registry",
        "build",
        "edit-registry",
    }
    # Inclusion copies actions, not members.
    assert policy.roles["admins"].groups == frozenset()
    assert policy.roles["users"].users == frozenset()


def test_polkit_actions_are_accepted(tmp_path):
    policy = parse(
        tmp_path,
        """
        [roles]
        root=root
        [root]
        actions=manage-token,build-as,edit-registry-as,purge-history,edit-keyring,manage-image
        """,
    )
    assert "manage-token" in policy.roles["root"].actions


def test_empty_actions_grant_nothing(tmp_path):
    policy = parse(
        tmp_path,
        """
        [roles]
        anonymous
        [anonymous]
        actions=
        """,
    )
    assert policy.anonymous_actions == frozenset()


# --- Errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            """
            [roles]
            a=alice
            b=bob
            [a]
            actions=@b
            [b]
            actions=@a
            """,
            "cycle",
            id="inclusion-cycle",
        ),
        pytest.param(
            """
            [roles]
            a=alice
            [a]
            actions=build,@a
            """,
            "cycle",
            id="self-inclusion",
        ),
        pytest.param(
            """
            [roles]
            a=alice
            [a]
            actions=@ghosts
            """,
            "unknown role '@ghosts'",
            id="unknown-included-role",
        ),
        pytest.param(
            """
            [roles]
            a=alice
            [a]
            actions=view-registry,fly
            """,
            "unknown action 'fly'",
            id="unknown-action",
        ),
        pytest.param(
            """
            [anonymous]
            actions=view-registry
            """,
            "missing [roles] section",
            id="missing-roles",
        ),
        pytest.param(
            """
            [roles]
            anonymous
            admins=alice
            [anonymous]
            actions=view-registry
            """,
            "role 'admins' has no [admins] section",
            id="role-without-section",
        ),
        pytest.param(
            """
            [roles]
            admins=alice
            [admins]
            description=no actions here
            """,
            "[admins] has no 'actions' option",
            id="section-without-actions",
        ),
        pytest.param(
            """
            actions=view-registry
            [roles]
            anonymous
            """,
            "invalid syntax",
            id="option-before-any-section",
        ),
        pytest.param(
            """
            [roles
            anonymous
            """,
            "invalid syntax",
            id="unclosed-section-header",
        ),
        pytest.param(
            """
            [roles]
            anonymous
            [anonymous]
            actions=view-registry
            [anonymous]
            actions=build
            """,
            "invalid syntax",
            id="duplicate-section",
        ),
        pytest.param(
            """
            [roles]
            a=alice
            a=bob
            [a]
            actions=build
            """,
            "invalid syntax",
            id="duplicate-option",
        ),
        pytest.param(
            """
            [roles]
            admins=@
            [admins]
            actions=build
            """,
            "empty group name",
            id="empty-group",
        ),
    ],
)
def test_broken_policies_are_refused_with_a_clear_message(tmp_path, text, problem):
    assert problem in policy_error(tmp_path, text)


def test_cycle_message_shows_the_cycle(tmp_path):
    message = policy_error(
        tmp_path,
        """
        [roles]
        a=alice
        b=bob
        c=carol
        [a]
        actions=@b
        [b]
        actions=@c
        [c]
        actions=@a
        """,
    )
    assert "a -> b -> c -> a" in message


def test_missing_file_is_refused(tmp_path):
    path = tmp_path / "absent.acl"
    with pytest.raises(PolicyError) as caught:
        parse_policy(path)
    assert str(path) in str(caught.value)
    assert "cannot be read" in str(caught.value)


def test_unreadable_file_is_refused(tmp_path, monkeypatch):
    path = write(tmp_path, VENDOR_POLICY.read_text())

    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    # chmod 0 does not stop root: refuse the open itself.
    monkeypatch.setattr("accounts.policy.open", denied, raising=False)
    with pytest.raises(PolicyError) as caught:
        parse_policy(path)
    assert str(caught.value) == f"policy file {path}: cannot be read: Permission denied"


def test_file_not_in_utf8_is_refused(tmp_path):
    path = tmp_path / "latin1.acl"
    path.write_bytes(b"[roles]\nanonymous\n[anonymous]\nactions=view-task\xff\n")
    with pytest.raises(PolicyError) as caught:
        parse_policy(path)
    assert str(path) in str(caught.value)
    assert "cannot be read" in str(caught.value)


def test_directory_is_refused(tmp_path):
    with pytest.raises(PolicyError) as caught:
        parse_policy(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_policy_error_is_an_improperly_configured():
    from django.core.exceptions import ImproperlyConfigured

    assert issubclass(PolicyError, ImproperlyConfigured)


# --- Policy.allows -------------------------------------------------------------------------


@pytest.fixture
def policy(tmp_path) -> Policy:
    return parse(
        tmp_path,
        """
        [roles]
        anonymous
        builders=alice,@fatbuildr
        admins=root
        [anonymous]
        actions=view-registry
        [builders]
        actions=build
        [admins]
        actions=@builders,edit-registry
        """,
    )


def test_anonymous_gets_the_anonymous_actions_only(policy):
    assert policy.allows("view-registry", None, None)
    assert not policy.allows("build", None, None)
    assert not policy.allows("view-task", None, None)
    # Groups of nobody do not matter.
    assert not policy.allows("build", None, frozenset({"fatbuildr"}))


def test_anonymous_actions_apply_to_authenticated_users(policy):
    for username in ("alice", "root", "stranger"):
        assert policy.allows("view-registry", username, frozenset())
    assert policy.roles_of("stranger", frozenset()) == {"anonymous"}


def test_users_get_their_roles_actions(policy):
    assert policy.allows("build", "alice", frozenset())
    assert not policy.allows("edit-registry", "alice", frozenset())
    assert policy.allows("edit-registry", "root", frozenset())
    assert policy.allows("build", "root", frozenset())  # through @builders
    assert not policy.allows("build", "stranger", frozenset())
    assert policy.roles_of("root", None) == {"anonymous", "admins"}


def test_group_members_get_the_group_roles(policy):
    assert policy.allows("build", "bob", frozenset({"fatbuildr"}))
    assert not policy.allows("build", "bob", frozenset({"other"}))
    assert not policy.allows("build", "bob", None)
    assert policy.roles_of("bob", frozenset({"fatbuildr"})) == {"anonymous", "builders"}


def test_user_names_are_not_group_names(policy):
    # "@fatbuildr" names a group; a user called "fatbuildr" is not a member by name.
    assert not policy.allows("build", "fatbuildr", frozenset())


def test_without_anonymous_role_nobody_gets_anything_for_free(tmp_path):
    policy = parse(
        tmp_path,
        """
        [roles]
        readers=alice
        [readers]
        actions=view-registry
        """,
    )
    assert policy.anonymous_actions == frozenset()
    assert not policy.allows("view-registry", None, None)
    assert not policy.allows("view-registry", "bob", frozenset())
    assert policy.allows("view-registry", "alice", frozenset())
    assert policy.roles_of(None, None) == frozenset()


# --- Start-up ------------------------------------------------------------------------------


def run_check(policy_path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "FATBUILDR_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="fatbuildr_site.settings",
        DJANGO_SECRET_KEY="policy-check-test-secret",
        FATBUILDR_POLICY=str(policy_path),
        FATBUILDR_DATA_DIR=str(tmp_path / "data"),
    )
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "manage.py"), "check"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_startup_refuses_a_broken_policy(tmp_path):
    broken = write(
        tmp_path,
        """
        [roles]
        anonymous
        [anonymous]
        actions=view-registry,teleport
        """,
        name="broken.acl",
    )
    result = run_check(broken, tmp_path)
    assert result.returncode != 0
    assert f"policy file {broken}: role 'anonymous' has unknown action 'teleport'" in result.stderr


def test_startup_accepts_a_valid_policy(tmp_path):
    valid = write(tmp_path, VENDOR_POLICY.read_text(), name="valid.acl")
    result = run_check(valid, tmp_path)
    assert result.returncode == 0, result.stderr
