"""Task handlers of artifact builds and build environments, run by the workers."""

from builds import environments
from builds.building import build_artifact
from builds.environments import BuildEnvironment, BuildEnvironmentError
from tasks.engine import TaskContext, TaskFailure, handler
from tasks.models import TaskName


def _environment(context: TaskContext) -> BuildEnvironment:
    task = context.task
    return BuildEnvironment(context.instance.pk, task.format, task.environment, task.architecture)


@handler(TaskName.IMAGE_BUILD_ENV_CREATION)
def create_environment(context: TaskContext) -> None:
    try:
        environments.create(_environment(context), run=context.run, log=context.log)
    except BuildEnvironmentError as error:
        raise TaskFailure(str(error)) from error


@handler(TaskName.IMAGE_BUILD_ENV_UPDATE)
def update_environment(context: TaskContext) -> None:
    try:
        environments.update(_environment(context), run=context.run, log=context.log)
    except BuildEnvironmentError as error:
        raise TaskFailure(str(error)) from error


handler(TaskName.ARTIFACT_BUILD)(build_artifact)
