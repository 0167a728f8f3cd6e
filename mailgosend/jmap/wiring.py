# -*- test-case-name: tests.test_jmap_core -*-
"""Building the JMAP endpoint from the process's services (service.py calls ``endpoint``;
web/site.py mounts what it returns under the web port's Site)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mailgosend.jmap import catalog as catalog_module
from mailgosend.jmap.auth import Authenticator
from mailgosend.jmap.blobs import Blobs
from mailgosend.jmap.http import JMAPResource, Services
from mailgosend.jmap.methods import SUBMISSION, Limits
from mailgosend.jmap.push import EventSourceRoute
from mailgosend.jmap.session import API_PATH, UPLOAD_PATH
from mailgosend.jmap.submission import capabilities
from mailgosend.jmap.transfer import BlobRoutes

__all__ = ["Endpoint", "endpoint_factory"]


@dataclass(frozen=True)
class Endpoint:
    """What the Site mounts: the resource (at /jmap/ and /.well-known/), the body limits
    of its routes, and its rate limit for POSTs."""

    resource: JMAPResource
    body_limits: tuple[tuple[bytes, int], ...]
    rate_per_min: int

    @property
    def well_known(self) -> JMAPResource:
        return self.resource


def endpoint_factory(*, config: Any, portal: Any, runner: Any, mail: Any, events: Any,
                     clock: Any, extra: dict[str, Any] | None = None
                     ) -> Callable[[Any], Endpoint]:
    """A function of the web port's SessionManager (build_site's ``jmap``) to the endpoint."""
    limits = Limits(max_size_upload=config["MAX_MESSAGE_SIZE"])
    catalog = catalog_module.load()
    settings = (extra or {}).get("submission")
    if settings is not None:  # send later's limit, from the configuration
        catalog.account_capabilities.setdefault(SUBMISSION, {}).update(
            capabilities(settings))
    blobs = Blobs(mail=mail, clock=clock)

    def make(sessions: Any) -> Endpoint:
        services = Services(mail=mail, events=events, clock=clock, blobs=blobs,
                            extra=dict(extra or {}))
        authenticator = Authenticator(portal=portal, sessions=sessions, mail=mail,
                                      runner=runner)
        resource = JMAPResource(services=services, authenticator=authenticator,
                                catalog=catalog, limits=limits,
                                uploads=BlobRoutes(blobs, limits),
                                push=EventSourceRoute(events, clock))
        return Endpoint(resource,
                        ((API_PATH.encode(), limits.max_size_request),
                         (UPLOAD_PATH.encode(), limits.max_size_upload)),
                        config["JMAP_RATE_PER_MIN"])
    return make
