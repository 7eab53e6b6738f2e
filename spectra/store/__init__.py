"""The store: SQLAlchemy models, engines and sessions, migrations, and the queries on results.

The only package that talks SQL. It imports nothing else of SpectraMonitor.
"""

from spectra.store.accounts import (
    ApiToken,
    AuditLog,
    GlobalMaintenance,
    Impersonation,
    Membership,
    OrganizationSettings,
    RecoveryCode,
    RefreshToken,
    Role,
    Throttle,
    UsedLink,
    User,
    UserSession,
    UserStatus,
)
from spectra.store.base import NAMING_CONVENTION, Base
from spectra.store.config import Monitor, MonitorLocation, Resource, load_spec
from spectra.store.engine import (
    DEFAULT_DATABASE_URL,
    database_url,
    make_engine,
    redacted,
    session_factory,
)
from spectra.store.heartbeats import HeartbeatPush, last_push, push_token_hash, record_push
from spectra.store.incidents import (
    OPEN_STATES,
    EscalationState,
    EscalationStatus,
    Incident,
    IncidentEvent,
    IncidentEventType,
    IncidentState,
)
from spectra.store.leader import LeaderLease, acquire_lease, lease_holder, release_lease
from spectra.store.migrate import current_revision, downgrade, head_revision, upgrade, upgrade_sql
from spectra.store.monitor_states import MonitorState, down_monitors, load_states, save_states
from spectra.store.notifications import Notification, NotificationAttempt, NotificationStatus
from spectra.store.oncall_overrides import OncallFeed, OncallOverride
from spectra.store.overview import LocationOverview, MonitorOverview, monitor_overview
from spectra.store.results import (
    CheckResult,
    CheckStatus,
    DailyRollup,
    HourlyRollup,
    PruneCounts,
    RetentionPolicy,
    RollupCounts,
    insert_results,
    prune_daily,
    prune_results,
    rollup,
    rollup_days,
)
from spectra.store.statuspages import (
    PageIncident,
    PageIncidentSource,
    PageIncidentState,
    PageIncidentUpdate,
    PageMaintenance,
)
from spectra.store.subscribers import WHOLE_PAGE, Subscriber
from spectra.store.types import BigIntPK, JSONType, UTCDateTime, utcnow
from spectra.store.upsert import upsert, upsert_statement
from spectra.store.webhook_requests import WebhookRequest
from spectra.store.worker_leases import MonitorLease, ProbeWorker

__all__ = [
    "DEFAULT_DATABASE_URL",
    "NAMING_CONVENTION",
    "OPEN_STATES",
    "WHOLE_PAGE",
    "ApiToken",
    "AuditLog",
    "Base",
    "BigIntPK",
    "CheckResult",
    "CheckStatus",
    "DailyRollup",
    "EscalationState",
    "EscalationStatus",
    "GlobalMaintenance",
    "HeartbeatPush",
    "HourlyRollup",
    "Impersonation",
    "Incident",
    "IncidentEvent",
    "IncidentEventType",
    "IncidentState",
    "JSONType",
    "LeaderLease",
    "LocationOverview",
    "Membership",
    "Monitor",
    "MonitorLease",
    "MonitorLocation",
    "MonitorOverview",
    "MonitorState",
    "Notification",
    "NotificationAttempt",
    "NotificationStatus",
    "OncallFeed",
    "OncallOverride",
    "OrganizationSettings",
    "PageIncident",
    "PageIncidentSource",
    "PageIncidentState",
    "PageIncidentUpdate",
    "PageMaintenance",
    "ProbeWorker",
    "PruneCounts",
    "RecoveryCode",
    "RefreshToken",
    "Resource",
    "RetentionPolicy",
    "Role",
    "RollupCounts",
    "Subscriber",
    "Throttle",
    "UTCDateTime",
    "UsedLink",
    "User",
    "UserSession",
    "UserStatus",
    "WebhookRequest",
    "acquire_lease",
    "current_revision",
    "database_url",
    "down_monitors",
    "downgrade",
    "head_revision",
    "insert_results",
    "last_push",
    "lease_holder",
    "load_spec",
    "load_states",
    "make_engine",
    "monitor_overview",
    "prune_daily",
    "prune_results",
    "push_token_hash",
    "record_push",
    "redacted",
    "release_lease",
    "rollup",
    "rollup_days",
    "save_states",
    "session_factory",
    "upgrade",
    "upgrade_sql",
    "upsert",
    "upsert_statement",
    "utcnow",
]
