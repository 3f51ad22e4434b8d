"""Task handlers of the instance keyrings (compat §9) and registries, run by the workers."""

from registry import keyrings, publishing
from registry.publishing import Target
from registry.signing import SigningError
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


@handler(TaskName.ARTIFACT_DELETION)
def delete_artifact(context: TaskContext) -> None:
    task = context.task
    target = Target(context.instance, task.format, task.distribution, task.derivative)
    try:
        publishing.delete(
            target,
            task.artifact,
            task.artifact_architecture,
            task.artifact_version,
            run=context.run,
            log=context.log,
        )
    except (publishing.PublishError, SigningError) as error:
        raise TaskFailure(str(error)) from error
