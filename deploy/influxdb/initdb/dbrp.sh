#!/bin/sh
# InfluxQL reads on InfluxDB 2 (the facility service's trends and reports, `GET /query?db=...`)
# need a database/retention-policy (DBRP) mapping to a bucket; the setup makes none. The influxdb
# image runs this once, right after its first-start setup, with the influx CLI already signed in
# as the admin (DOCKER_INFLUXDB_INIT_* are set; the image adds the new bucket's id). The database
# takes the bucket's name, as deploy/site.yaml's `stores.telemetry.bucket` asks `/query` for it.
set -eu
influx v1 dbrp create \
    --org "$DOCKER_INFLUXDB_INIT_ORG" \
    --bucket-id "$DOCKER_INFLUXDB_INIT_BUCKET_ID" \
    --db "$DOCKER_INFLUXDB_INIT_BUCKET" \
    --rp autogen \
    --default
