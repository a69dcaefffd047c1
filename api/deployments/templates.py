"""The template catalog as users see it: services, images, ports and env vars."""

from __future__ import annotations

from api.deployments.schemas import TemplateOut, TemplateServiceOut, TemplatesResponse
from api.errors import Invalid
from programs.templates import Template, load_catalog


def template_out(t: Template) -> TemplateOut:
    services = [
        TemplateServiceOut(
            name=s.name,
            image=s.image,
            port=s.port,
            public=s.public,
            defaultEnv=dict(s.env),
            requiredEnv=list(s.required_env),
        )
        for s in t.services
    ]
    return TemplateOut(name=t.name, description=t.description, services=services)


def list_templates() -> TemplatesResponse:
    return TemplatesResponse(templates=[template_out(t) for t in sorted(load_catalog().values(), key=lambda t: t.name)])


def template_or_invalid(name: str) -> Template:
    catalog = load_catalog()
    template = catalog.get(name)
    if template is None:
        raise Invalid(f"unknown template {name!r}; available: {', '.join(sorted(catalog))}")
    return template
