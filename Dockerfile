# The facility service: gateway, rules, API and desk (`facility run`), or the simulators.
# The base image is pinned to an exact release, so that a rebuild gives the same interpreter and
# Debian; move the pin on purpose (and rebuild) for security updates.
FROM python:3.11.13-slim-bookworm
WORKDIR /app
# Every package of pyproject.toml's wheel (`[tool.hatch.build.targets.wheel] packages`): hatchling
# builds without complaint from whatever is there, and a package left out here is an image whose
# `facility` fails at its first import (tests/test_image.py builds the wheel from these lines).
COPY pyproject.toml README.md ./
COPY facility facility
COPY gateway gateway
COPY rules rules
COPY api api
COPY simulators simulators
COPY reports reports
COPY facility_app facility_app
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/facility facility \
    && mkdir -p /var/lib/facility && chown facility /var/lib/facility
USER facility
WORKDIR /var/lib/facility
ENTRYPOINT ["facility"]
CMD ["run", "-c", "/etc/facility/site.yaml", "--host", "0.0.0.0"]
