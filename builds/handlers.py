"""Task handlers of artifact builds and build environments, run by the workers."""

from collections.abc import Callable

from builds import environments
from builds.building import build_artifact
from builds.environments import BuildEnvironment, BuildEnvironmentError
from tasks.engine import TaskContext, TaskFailure, handler
from tasks.models import TaskName


def _environment(context: TaskContext) -> BuildEnvironment:
    task = context.task
    return BuildEnvironment(context.instance.pk, task.format, task.environment, task.architecture)


def _environment_handler(step: Callable[..., None]) -> Callable[[TaskContext], None]:
    """A handler running one step (create, update) on the task's build environment."""

    def run(context: TaskContext) -> None:
        try:
            step(_environment(context), run=context.run, log=context.log)
        except BuildEnvironmentError as error:
            raise TaskFailure(str(error)) from error

    return run


handler(TaskName.IMAGE_BUILD_ENV_CREATION)(_environment_handler(environments.create))
handler(TaskName.IMAGE_BUILD_ENV_UPDATE)(_environment_handler(environments.update))
handler(TaskName.ARTIFACT_BUILD)(build_artifact)
