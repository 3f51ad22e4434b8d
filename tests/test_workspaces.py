"""The workspace folders shared by the web server and the workers (tasks/workspaces.py).

The tests run as root, like the workers; tests/test_shared_data_root_e2e.py runs the
web server as another user against them."""

import errno
import os
import stat

import pytest

from tasks.workspaces import instance_workspaces

SHARED_GROUP = 64410


def mode_and_group(path) -> tuple[int, int]:
    status = path.stat()
    return stat.S_IMODE(status.st_mode), status.st_gid


@pytest.fixture
def shared_data_dir(data_dir):
    """The data root, of the web server's group."""
    os.chown(data_dir, -1, SHARED_GROUP)
    return data_dir


def test_the_folders_are_made_group_writable_with_the_group_of_the_data_root(shared_data_dir):
    old_umask = os.umask(0o022)
    try:
        folder = instance_workspaces("default")
    finally:
        os.umask(old_umask)
    assert folder == shared_data_dir / "workspaces" / "default"
    for path in (folder.parent, folder):
        assert mode_and_group(path) == (0o775, SHARED_GROUP)


def test_folders_made_otherwise_are_repaired(shared_data_dir):
    folder = shared_data_dir / "workspaces" / "default"
    folder.mkdir(parents=True, mode=0o755)
    os.chmod(folder.parent, 0o700)
    instance_workspaces("default")
    for path in (folder.parent, folder):
        assert mode_and_group(path) == (0o775, SHARED_GROUP)


def test_a_link_in_place_of_a_folder_is_refused_and_its_target_left_alone(
    shared_data_dir, tmp_path
):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (shared_data_dir / "workspaces").mkdir()
    (shared_data_dir / "workspaces" / "default").symlink_to(target)
    with pytest.raises(OSError) as raised:
        instance_workspaces("default")
    assert raised.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert mode_and_group(target) == (0o700, 0)
