"""Pipeline semantics of an instance: formats, distributions and derivatives.

Follows the documented Fatbuildr semantics (compat §10): `main` is implicit
and supports every format; a derivative without `formats` supports every
format of its parent; a derivative applies to every distribution of the
formats it supports.
"""

from dataclasses import dataclass, field

from fatbuildr_site.errors import NotFoundError
from instances.constants import MAIN_DERIVATIVE


class UnknownDerivative(NotFoundError):
    """The derivative is not part of the instance pipelines."""

    def __init__(self, name: str):
        super().__init__(f"Derivative {name} is not supported")
        self.name = name


@dataclass(frozen=True)
class DistributionSpec:
    """A pipeline distribution."""

    name: str
    format: str
    environment: str | None
    tag: str | None


@dataclass(frozen=True)
class DerivativeSpec:
    """A pipeline derivative; `formats` empty = all formats of the parent."""

    name: str
    formats: tuple[str, ...] = ()
    extends: str | None = MAIN_DERIVATIVE


@dataclass
class Pipelines:
    """The pipelines of one instance, in the order of its instance file."""

    formats: list[str]
    distributions: list[DistributionSpec]
    derivatives: list[DerivativeSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._derivatives = {d.name: d for d in self.derivatives if d.name != MAIN_DERIVATIVE}

    def derivative_names(self) -> list[str]:
        """Every derivative, main first."""
        return [MAIN_DERIVATIVE, *self._derivatives]

    def derivative_formats(self, name: str) -> list[str]:
        """Formats a derivative supports, in pipeline order; UnknownDerivative if none such."""
        supported = self._supported_formats(name, ())
        return [fmt for fmt in self.formats if fmt in supported]

    def _supported_formats(self, name: str, trail: tuple[str, ...]) -> set[str]:
        if name == MAIN_DERIVATIVE:
            return set(self.formats)
        spec = self._derivatives.get(name)
        if spec is None or name in trail:
            raise UnknownDerivative(name)
        parent = self._supported_formats(spec.extends or MAIN_DERIVATIVE, (*trail, name))
        return parent & set(spec.formats) if spec.formats else parent

    def recursive_derivatives(self, name: str) -> list[str]:
        """The chain [name, parent, ..., main] used to layer repositories at build time."""
        chain = [name]
        while chain[-1] != MAIN_DERIVATIVE:
            spec = self._derivatives.get(chain[-1])
            if spec is None:
                raise UnknownDerivative(chain[-1])
            parent = spec.extends or MAIN_DERIVATIVE
            if parent in chain:
                raise UnknownDerivative(name)
            chain.append(parent)
        return chain

    def dist_derivatives(self, distribution: DistributionSpec) -> list[str]:
        """Derivatives available for a distribution: main, then those supporting its format."""
        return [
            name
            for name in self.derivative_names()
            if distribution.format in self._supported_formats(name, ())
        ]

    def distribution(self, name: str) -> DistributionSpec | None:
        return next((d for d in self.distributions if d.name == name), None)

    def formats_listing(
        self,
        *,
        format: str | None = None,
        distribution: str | None = None,
        environment: str | None = None,
        derivative: str | None = None,
    ) -> dict[str, list[dict]]:
        """The `pipelines/formats.json` document, filtered exactly as upstream (compat §1.5)."""
        formats = self.derivative_formats(derivative) if derivative else self.formats
        listing: dict[str, list[dict]] = {}
        for fmt in formats:
            if format is not None and fmt != format:
                continue
            for dist in self.distributions:
                if dist.format != fmt:
                    continue
                if distribution is not None and dist.name != distribution:
                    continue
                if environment is not None and dist.environment != environment:
                    continue
                listing.setdefault(fmt, []).append(
                    {
                        "distribution": dist.name,
                        "environment": dist.environment,
                        "derivatives": self.dist_derivatives(dist),
                    }
                )
        return listing
