"""Task handlers of artifact builds and build environments, run by the workers.

Handlers are thin: they turn the Task row into plain arguments, call the
service with the task's journal (`log`) and command runner (`run`), and turn
the service's errors into the task's failure.
"""

from collections.abc import Callable
from pathlib import Path

from builds import building, environments
from builds.building import BUILD_ERRORS, BuildRequest
from builds.environments import BuildEnvironment, BuildEnvironmentError
from tasks.engine import TaskContext, TaskFailure, handler
from tasks.models import Task, TaskName


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


def build_request(task: Task, workspace: Path) -> BuildRequest:
    """An `artifact build` task in the plain values the build service takes."""
    return BuildRequest(
        instance=task.instance,
        format=task.format,
        distribution=task.distribution,
        derivative=task.derivative,
        artifact=task.artifact,
        architectures=tuple(task.architectures),
        archives=tuple((archive["id"], Path(archive["path"])) for archive in task.archives),
        author=task.author,
        email=task.email,
        message=task.message,
        task_id=str(task.pk),
        workspace=workspace,
    )


@handler(TaskName.ARTIFACT_BUILD)
def build_artifact(context: TaskContext) -> None:
    """Handler of `artifact build` tasks."""
    request = build_request(context.task, context.workspace)
    try:
        building.build_artifact(request, run=context.run, log=context.log)
    except BUILD_ERRORS as error:
        raise TaskFailure(str(error)) from error


handler(TaskName.IMAGE_BUILD_ENV_CREATION)(_environment_handler(environments.create))
handler(TaskName.IMAGE_BUILD_ENV_UPDATE)(_environment_handler(environments.update))
