"""Shared fixtures: instances, clients (anonymous, with a token, with a role), URL modes,
the task engine's recorders."""

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.policy import _load
from accounts.tokens import generate_token
from instances.models import Instance
from instances.services import load_instance_file
from registry import keyrings
from tasks import engine
from tests.factories import InstanceFactory
from tests.workers import Worker, forget_test_queues, purge_test_queues

# The browser fixtures (headless Chromium), for every test module.
pytest_plugins = ["tests.browser"]

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def default_instance(db) -> Instance:
    """The shipped default instance, loaded from instance-files/default.yml."""
    instance, _ = load_instance_file(path=REPO_ROOT / "instance-files" / "default.yml")
    return instance


@pytest.fixture
def data_dir(settings, monkeypatch, tmp_path) -> Path:
    """A private data root for this test, seen by this process and the workers and web
    servers it starts afterwards."""
    data = tmp_path / "data"
    data.mkdir()
    settings.FATBUILDR_DATA_DIR = data
    monkeypatch.setenv("FATBUILDR_DATA_DIR", str(data))
    return data


# Keyring homes made once per run, copied into each test's data root: key generation
# is the slow part of a registry test.
_keyring_templates: dict[str, Path] = {}


@pytest.fixture
def signed_instance(default_instance, data_dir, settings, tmp_path_factory) -> Iterator[Instance]:
    """The default instance with a real keyring (RSA 2048, for speed) on a private data root,
    so that its registries can be signed. Its gpg-agent is stopped afterwards."""
    home = keyrings.keyring_home(default_instance.pk)
    template = _keyring_templates.get(default_instance.pk)
    if template is None:
        settings.FATBUILDR_KEYRING_KEY_SIZE = 2048
        keyrings.create_keyring(default_instance, log=lambda *args, **kwargs: None)
        template = tmp_path_factory.mktemp("keyring") / "home"
        # Without the agent's sockets: each copy gets its own agent.
        shutil.copytree(home, template, ignore=shutil.ignore_patterns("S.*"))
        _keyring_templates[default_instance.pk] = template
    else:
        shutil.copytree(template, home, dirs_exist_ok=True)
        keyrings.sync_keyring_record(default_instance)
    yield default_instance
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False, timeout=30
    )


@pytest.fixture
def anonymous_client() -> APIClient:
    return APIClient()


@pytest.fixture
def token_for() -> Callable[..., str]:
    """Make a token: token_for(instance, "alice", duration_days=30)."""

    def make(instance: Instance, username: str, duration_days: int | None = None) -> str:
        return generate_token(instance=instance, username=username, duration_days=duration_days)

    return make


@pytest.fixture
def client_for(token_for) -> Callable[..., APIClient]:
    """A client sending a bearer token for *username* on *instance*."""

    def make(instance: Instance, username: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(instance, username)}")
        return client

    return make


@pytest.fixture
def client_with_role(db, client_for) -> Callable[..., APIClient]:
    """A client whose user holds an admin Role granting *actions*."""

    def make(instance: Instance, *actions: str, username: str = "maintainer") -> APIClient:
        Role.objects.create(name=f"role-{username}", actions=list(actions), users=[username])
        return client_for(instance, username)

    return make


@pytest.fixture
def fatbuildr_group_member(db) -> User:
    """A Django user in group "fatbuildr" (the `users` role of the vendor policy)."""
    user = User.objects.create_user("builder")
    user.groups.add(Group.objects.get_or_create(name="fatbuildr")[0])
    return user


@pytest.fixture
def mono_mode(settings, default_instance):
    """Serve the default instance without the /{instance} prefix."""
    settings.FATBUILDR_INSTANCE = default_instance.id
    settings.ROOT_URLCONF = "tests.urls_mono"
    return default_instance


@pytest.fixture
def multi_mode(settings):
    settings.FATBUILDR_INSTANCE = None
    settings.ROOT_URLCONF = "tests.urls_multi"


@pytest.fixture
def start_worker(transactional_db, tmp_path) -> Iterator[Callable[..., Worker]]:
    """Start real Celery task workers on this run's queues: start_worker(concurrency=2).

    As scripts/run does, the first one comes with the maintenance worker and its beat
    (reaper, reconciler), in the same environment. They are SIGKILLed at the end of the
    test, and the queues emptied."""
    workers: list[Worker] = []

    def start(**options) -> Worker:
        if not workers:
            start.maintenance = Worker(tmp_path, maintenance=True, env=options.get("env"))
            workers.append(start.maintenance)
        worker = Worker(tmp_path, **options)
        workers.append(worker)
        return worker

    purge_test_queues()
    yield start
    for worker in workers:
        worker.stop()
    purge_test_queues()


@pytest.fixture(scope="session", autouse=True)
def _forget_test_queues_at_the_end() -> Iterator[None]:
    """Leave nothing of this run's unique queues in the shared Redis."""
    yield
    forget_test_queues()


@pytest.fixture
def fresh_policy_cache() -> Iterator[None]:
    """The policy file read again by this test (it may point FATBUILDR_POLICY elsewhere)."""
    _load.cache_clear()
    yield
    _load.cache_clear()


@pytest.fixture
def sent(monkeypatch) -> list:
    """Task messages, recorded instead of sent to the broker."""
    messages: list = []
    monkeypatch.setattr(engine, "enqueue_message", messages.append)
    return messages


@pytest.fixture
def send_calls(monkeypatch) -> list:
    """Task ids given to `engine.send`, in order (nothing reaches Redis). Unlike `sent`, this
    also records the sends that `engine.send` would have let fail quietly."""
    messages: list = []
    monkeypatch.setattr(engine, "send", messages.append)
    return messages


@pytest.fixture
def engine_instance(db) -> Instance:
    """A bare instance of the engine tests' own, without pipelines or files."""
    return InstanceFactory(id="engine")


@pytest.fixture
def temporary_handler() -> Iterator[Callable[..., None]]:
    """register(name, function): a task handler that exists for this test only."""
    names: list[str] = []

    def register(name: str, function) -> None:
        engine.handler(name)(function)
        names.append(name)

    yield register
    for name in names:
        engine._handlers.pop(name, None)


@pytest.fixture
def builder(default_instance, data_dir, client_for, fatbuildr_group_member, sent) -> APIClient:
    """A member of group fatbuildr: the vendor policy lets it build."""
    return client_for(default_instance, fatbuildr_group_member.username)
