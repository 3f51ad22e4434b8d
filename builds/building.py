"""The `artifact build` service: a build request to signed, published packages.

Steps (compat §7, DESIGN Builds), each in the task journal:
1. prepare, in the worker (builds/preparation.py): extract the definition,
   gather the sources, choose the version; the format's builder
   (builds/formats/) lays out the build folder;
2. build, in the sandbox (builds/sandbox.py): build dependencies installed
   with the network as root, then the artifact's own code without network as
   an unprivileged uid, one overlay of the build root per architecture;
3. collect the results out of the build folder without following any link
   the build may have planted (builds/outputs.py), then sign and publish them
   through the registry service, in the worker.

The caller (the task handler, builds/handlers.py) hands a plain
`BuildRequest` and its journal (*log*) and command runner (*run*): nothing
here sees the Task row or the tasks engine.

The workspace holds `upload/` (what the request sent), `definition/`,
`build/` (the only folder a sandbox sees, mounted at /build), `output/`
(the checked results) and `sandbox-<arch>/` (overlay layers, discarded).
"""

from builds import environments
from builds.archives import ArchiveError
from builds.definition import DefinitionError
from builds.environments import BuildEnvironmentError
from builds.formats import FormatError, builder_for
from builds.outputs import collect_outputs
from builds.preparation import BuildRequest, Log, Run, prepare
from builds.sandbox import SandboxError
from builds.sources import SourceError
from builds.templates import TemplateError
from registry import publishing
from registry.packages import PackageError
from registry.publishing import PublishError
from registry.signing import SigningError

# Errors of the build's own making: they end the task with their message.
BUILD_ERRORS = (
    ArchiveError,
    DefinitionError,
    SourceError,
    TemplateError,
    BuildEnvironmentError,
    SandboxError,
    PublishError,
    SigningError,
    PackageError,
    FormatError,
)

__all__ = ["BUILD_ERRORS", "BuildRequest", "build_artifact"]


def build_artifact(request: BuildRequest, *, run: Run, log: Log) -> None:
    """Build the artifact of *request* and publish its packages; BUILD_ERRORS say why not."""
    target = request.target
    publishing.check_target(target)
    build = prepare(request, run=run, log=log)
    builder = builder_for(build)
    for architecture in build.architectures:
        environments.check_architecture(architecture)
    for architecture in build.architectures:
        environments.ensure(build.build_environment(architecture), run=run, log=log)
    builder.prepare()
    builder.build()
    outputs = collect_outputs(build.build_dir, build.workspace / "output", builder.results())
    publishing.publish(target, outputs, run=run, log=log, workspace=request.workspace)
    log(f"Artifact {build.artifact} {build.version.full} built and published in {target}")
