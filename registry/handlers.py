"""Task handlers of the instance keyrings (compat §9), run by the workers."""

from registry import keyrings
from tasks.engine import TaskContext, TaskFailure, handler
from tasks.models import TaskName


@handler(TaskName.KEYRING_CREATION)
def create_keyring(context: TaskContext) -> None:
    instance = context.instance
    try:
        if keyrings.has_keyring(instance.pk):
            # Made by an earlier run whose index row was lost (database restored):
            # keep the key that clients already trust rather than failing.
            info = keyrings.sync_keyring_record(instance)
            context.log(f"Keyring already present, fingerprint {info.master.fingerprint}")
            return
        keyrings.create_keyring(instance, log=context.log)
    except keyrings.KeyringError as error:
        raise TaskFailure(str(error)) from error


@handler(TaskName.KEYRING_RENEWAL)
def renew_keyring(context: TaskContext) -> None:
    try:
        keyrings.renew_keyring(
            context.instance, context.task.duration, log=context.log, run=context.run
        )
    except keyrings.KeyringError as error:
        raise TaskFailure(str(error)) from error
