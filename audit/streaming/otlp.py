"""OTLP logs over HTTP: one ExportLogsServiceRequest per batch, protobuf or JSON, accepted on any 2xx answer.

Each event is a LogRecord: its time, severity INFO (success, allow) or WARN (deny, failure), ``event_name`` the
action, the trace id when the event has one, the whole document (`document`) as the JSON body, and attributes
named after OpenTelemetry's semantic conventions where one exists (``client.address``, ``user_agent.original``,
``enduser.id``) and ``authsec.*`` otherwise. The resource names the service and the tenant.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import time
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from audit.models import AuditSink
from audit.streaming.net import post

logger = logging.getLogger("authsec.audit")
SCOPE = "authsec.audit"
SEVERITY = {
    "success": (SeverityNumber.SEVERITY_NUMBER_INFO, "INFO"),
    "allow": (SeverityNumber.SEVERITY_NUMBER_INFO, "INFO"),
    "deny": (SeverityNumber.SEVERITY_NUMBER_WARN, "WARN"),
    "failure": (SeverityNumber.SEVERITY_NUMBER_WARN, "WARN"),
}
CONTENT_TYPES = {AuditSink.Encoding.PROTOBUF: "application/x-protobuf", AuditSink.Encoding.JSON: "application/json"}


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    return AnyValue(string_value="" if value is None else str(value))


def _attributes(values: dict[str, Any]) -> list[KeyValue]:
    """Only the values that are set (OTLP has no null)."""
    return [KeyValue(key=key, value=_value(value)) for key, value in values.items() if value not in (None, "")]


def _nanos(iso_time: str) -> int:
    moment = dt.datetime.fromisoformat(iso_time)
    return (int(moment.timestamp()) * 1_000_000 + moment.microsecond) * 1000


def log_record(document: dict[str, Any], observed: int) -> LogRecord:
    severity, severity_text = SEVERITY.get(document["outcome"], SEVERITY["success"])
    record = LogRecord(
        time_unix_nano=_nanos(document["created_at"]),
        observed_time_unix_nano=observed,
        severity_number=severity,
        severity_text=severity_text,
        event_name=document["action"],
        body=AnyValue(string_value=json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))),
        attributes=_attributes(
            {
                "authsec.tenant": document["tenant"],
                "authsec.audit.seq": document["seq"],
                "authsec.audit.hash": document["hash"],
                "authsec.audit.prev_hash": document["prev_hash"],
                "authsec.audit.action": document["action"],
                "authsec.audit.outcome": document["outcome"],
                "authsec.actor.type": document["actor_type"],
                "enduser.id": document["actor_id"],
                "authsec.actor.label": document["actor_label"],
                "authsec.target.type": document["target_type"],
                "authsec.target.id": document["target_id"],
                "authsec.target.label": document["target_label"],
                "client.address": document["ip"],
                "user_agent.original": document["user_agent"],
                "authsec.request_id": document["request_id"],
                "authsec.ocsf.class_uid": document["ocsf"]["class_uid"],
                "authsec.ocsf.type_uid": document["ocsf"]["type_uid"],
            }
        ),
    )
    if document["trace_id"]:
        record.trace_id = bytes.fromhex(document["trace_id"])
    return record


def export_request(tenant: str, documents: list[dict[str, Any]]) -> ExportLogsServiceRequest:
    observed = time.time_ns()
    resource = Resource(attributes=_attributes({"service.name": "authsec-server", "authsec.tenant": tenant}))
    scope = InstrumentationScope(name=SCOPE, version="1")
    records = [log_record(document, observed) for document in documents]
    return ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(scope=scope, log_records=records)])]
    )


def encode(request: ExportLogsServiceRequest, encoding: str) -> bytes:
    """Protobuf, or OTLP's JSON: proto3 JSON with integer enums and hex (not base64) trace and span ids."""
    if encoding == AuditSink.Encoding.PROTOBUF:
        return request.SerializeToString()
    data = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_logs in data.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            for record in scope_logs.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = _b64_to_hex(record[key])
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def send(sink: AuditSink, tenant: str, documents: list[dict[str, Any]], authorization: str) -> None:
    """POST one batch to the collector; raise `DeliveryError` unless it answered 2xx."""
    payload = encode(export_request(tenant, documents), sink.otlp_encoding)
    headers = {"Content-Type": CONTENT_TYPES[AuditSink.Encoding(sink.otlp_encoding)]}
    if authorization:
        headers["Authorization"] = authorization
    response = post(sink, payload, headers, what="OTLP")
    rejected = _rejected(response.body, sink.otlp_encoding)
    if rejected:
        # Partial success: the collector refused some records for good (OTLP: do not retry them). Logged.
        logger.warning("OTLP sink %s: the collector rejected %d log records", sink.name, rejected)


def _rejected(body: bytes, encoding: str) -> int:
    if not body:
        return 0
    try:
        if encoding == AuditSink.Encoding.PROTOBUF:
            answer = ExportLogsServiceResponse.FromString(body)
            return int(answer.partial_success.rejected_log_records)
        return int(json.loads(body).get("partialSuccess", {}).get("rejectedLogRecords", 0))
    except (ValueError, AttributeError, TypeError, DecodeError):
        return 0
