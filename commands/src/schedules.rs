//! Schedules as the application knows them: when one fires (`spec`), a schedule as stored,
//! and a new one or a change to one. The scheduler that fires them is in `infra`.

pub mod spec;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

pub use spec::{ScheduleSpec, SpecError};

/// A schedule as stored.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ScheduleRecord {
    pub id: Uuid,
    pub name: String,
    pub job_kind: String,
    pub params: Value,
    pub cron: Option<String>,
    pub every_seconds: Option<i64>,
    pub run_at: Option<DateTime<Utc>>,
    pub enabled: bool,
    pub builtin: bool,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl ScheduleRecord {
    pub fn spec(&self) -> Result<ScheduleSpec, SpecError> {
        ScheduleSpec::from_columns(self.cron.as_deref(), self.every_seconds, self.run_at)
    }
}

/// A new schedule or a change to one.
#[derive(Debug, Clone)]
pub struct ScheduleInput {
    pub name: String,
    pub job_kind: String,
    pub params: Value,
    pub spec: ScheduleSpec,
    pub enabled: bool,
}
