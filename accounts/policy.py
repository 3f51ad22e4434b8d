"""The access policy file, in the upstream ACL format, with its documented semantics.

Differences from upstream code (compat §4.4), all on purpose: `@role` in
`actions` includes that role's actions; names and actions are stripped; role
names match their section case-insensitively; unknown groups simply have no
members; every mistake in the file is reported when it is loaded.
"""

import configparser
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from accounts.constants import ANONYMOUS_ROLE, Action

logger = logging.getLogger(__name__)


class PolicyError(ImproperlyConfigured):
    """The policy file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class PolicyRole:
    """A role: who holds it and what it may do (includes already expanded)."""

    name: str
    users: frozenset[str]
    groups: frozenset[str]
    actions: frozenset[str]


@dataclass(frozen=True)
class Policy:
    """Roles loaded from one policy file."""

    path: Path
    roles: dict[str, PolicyRole]

    @property
    def anonymous_actions(self) -> frozenset[str]:
        role = self.roles.get(ANONYMOUS_ROLE)
        return role.actions if role else frozenset()

    @property
    def uses_groups(self) -> bool:
        return any(role.groups for role in self.roles.values())

    def roles_of(self, username: str | None, groups: frozenset[str] | None) -> frozenset[str]:
        """Names of the roles held by this user (the anonymous role included when declared)."""
        held = {ANONYMOUS_ROLE} if ANONYMOUS_ROLE in self.roles else set()
        if username is not None:
            held.update(
                role.name
                for role in self.roles.values()
                if username in role.users or role.groups & (groups or frozenset())
            )
        return frozenset(held)

    def allows(self, action: str, username: str | None, groups: frozenset[str] | None) -> bool:
        """Whether the anonymous role, or a role of this user, grants *action*."""
        if action in self.anonymous_actions:
            return True
        return any(action in self.roles[name].actions for name in self.roles_of(username, groups))


def parse_policy(path: Path) -> Policy:
    """Read and validate a policy file; raise PolicyError with a clear message."""
    parser = configparser.ConfigParser(allow_no_value=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as error:
        raise PolicyError(f"policy file {path}: cannot be read: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise PolicyError(f"policy file {path}: cannot be read: not UTF-8 text") from error
    except configparser.Error as error:
        raise PolicyError(f"policy file {path}: invalid syntax: {error}") from error

    if not parser.has_section("roles"):
        raise PolicyError(f"policy file {path}: missing [roles] section")

    sections = {name.strip().lower(): name for name in parser.sections() if name != "roles"}
    members: dict[str, tuple[set[str], set[str]]] = {}
    for raw_name, raw_members in parser.items("roles"):
        name = raw_name.strip().lower()
        if not name:
            raise PolicyError(f"policy file {path}: [roles] has an empty role name")
        if name in members:
            raise PolicyError(f"policy file {path}: role {name!r} is declared twice in [roles]")
        if name not in sections:
            raise PolicyError(f"policy file {path}: role {name!r} has no [{name}] section")
        users, groups = set(), set()
        for member in _split(raw_members):
            if member.startswith("@"):
                if not member[1:]:
                    raise PolicyError(f"policy file {path}: role {name!r}: empty group name")
                groups.add(member[1:])
            else:
                users.add(member)
        members[name] = (users, groups)

    declared: dict[str, list[str]] = {}
    for name in members:
        section = sections[name]
        if not parser.has_option(section, "actions"):
            raise PolicyError(f"policy file {path}: [{section}] has no 'actions' option")
        declared[name] = _split(parser.get(section, "actions"))

    known = set(Action.values)
    for name, actions in declared.items():
        for action in actions:
            if action.startswith("@"):
                if action[1:].strip().lower() not in declared:
                    raise PolicyError(
                        f"policy file {path}: role {name!r} includes unknown role {action!r}"
                    )
            elif action not in known:
                raise PolicyError(
                    f"policy file {path}: role {name!r} has unknown action {action!r} "
                    f"(known: {', '.join(sorted(known))})"
                )

    def expand(name: str, trail: tuple[str, ...]) -> frozenset[str]:
        if name in trail:
            cycle = " -> ".join((*trail, name))
            raise PolicyError(f"policy file {path}: role inclusion cycle {cycle}")
        result: set[str] = set()
        for action in declared[name]:
            if action.startswith("@"):
                result |= expand(action[1:].strip().lower(), (*trail, name))
            else:
                result.add(action)
        return frozenset(result)

    roles = {
        name: PolicyRole(
            name=name,
            users=frozenset(users),
            groups=frozenset(groups),
            actions=expand(name, ()),
        )
        for name, (users, groups) in members.items()
    }
    if ANONYMOUS_ROLE in roles and (roles[ANONYMOUS_ROLE].users or roles[ANONYMOUS_ROLE].groups):
        logger.warning("policy file %s: members of the anonymous role are ignored", path)
    return Policy(path=Path(path), roles=roles)


def _split(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


@functools.cache
def _load(path: str) -> Policy:
    return parse_policy(Path(path))


def get_policy() -> Policy:
    """The policy named by FATBUILDR_POLICY, parsed once per process."""
    return _load(str(settings.FATBUILDR_POLICY))
