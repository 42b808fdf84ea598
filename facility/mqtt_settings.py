"""The site file's `broker:` section: where the MQTT broker is and who the service is on it.

Its own module because the MQTT client (facility.mqtt), the simulators' device connections and the
broker's ACL all read it, none of them needing the rest of the site model.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator, model_validator


class Broker(BaseModel):
    """The MQTT broker and the service's user on it: `mqtts://` for TLS (port 8883 by default),
    its certificate checked against `ca_file`, or the system's CAs without it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password_env: str | None = None  # name of the environment variable holding the password
    # The CA certificate (PEM) the broker's certificate is checked against. An absolute path: the
    # service, the simulators and the broker's container each see it where they mount it.
    ca_file: str | None = None

    @property
    def password(self) -> str | None:
        """Read from the environment at connect time, so that no secret sits in a site file."""
        return os.environ.get(self.password_env) if self.password_env else None

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp", "mqtts") or not parts.hostname:
            raise ValueError("expected mqtt://HOST[:PORT], or mqtts://HOST[:PORT] for TLS")
        return url

    @field_validator("ca_file")
    @classmethod
    def _absolute(cls, ca_file: str | None) -> str | None:
        if ca_file is not None and not Path(ca_file).is_absolute():
            raise ValueError("give the CA file's absolute path (as the service sees it)")
        return ca_file

    @model_validator(mode="after")
    def _ca_needs_tls(self) -> Broker:
        # A CA file beside a plain URL would read as "checked" while nothing is encrypted.
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is for a TLS broker: use an mqtts:// url")
        return self

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)
