# The facility service: gateway, rules, API and desk (`facility run`), or the simulators.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY facility facility
COPY gateway gateway
COPY rules rules
COPY api api
COPY simulators simulators
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/facility facility \
    && mkdir -p /var/lib/facility && chown facility /var/lib/facility
USER facility
WORKDIR /var/lib/facility
ENTRYPOINT ["facility"]
CMD ["run", "-c", "/etc/facility/site.yaml", "--host", "0.0.0.0"]
