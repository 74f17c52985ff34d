//! The job kinds a schedule can name, and what each does when its tick comes.

use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use eshop_commands::directory::UserDirectory;
use eshop_commands::{Actor, CommandContext, CommandError};
use eshop_domain::product::{Product, ProductError};
use eshop_infra::feeds::FeedReader;
use eshop_infra::mail::outbox::NewMail;
use eshop_infra::mail::recipients::{Lookup, Recipients};
use eshop_infra::mail::templates::Template;
use eshop_infra::order_worker::{OrderWorker, SweepSettings};
use eshop_infra::personal_data::PersonalDataKeys;
use eshop_infra::reports;
use eshop_infra::scheduler::{JobRun, JobRunner};
use eshop_infra::user_directory::PgUserDirectory;

use crate::background::tasks::{RECOMPUTE_RATINGS, SALES_REPORT};
use crate::error::{ApiError, FieldError};
use crate::routes::products::{add_command, AddRequest};
use crate::state::AppState;

pub const SALES_SUMMARY: &str = "sales_summary";
pub const BOOK_FAIR: &str = "book_fair_announcement";
pub const CATALOG_IMPORT: &str = "catalog_import";
pub const HOUSEKEEPING: &str = "housekeeping";
/// The monthly import of `ESHOP_CALENDAR_FEED` (the same kind as the admin's import task).
pub const CALENDAR_IMPORT: &str = crate::background::tasks::CALENDAR_IMPORT;
/// Ended sessions are kept this long (a week) before housekeeping deletes them.
const SESSION_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Finished tasks are kept this long (their input and answer may hold personal data).
const TASK_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Every kind of job a schedule may run.
pub const JOB_KINDS: [&str; 7] = [
    SALES_SUMMARY,
    BOOK_FAIR,
    CATALOG_IMPORT,
    CALENDAR_IMPORT,
    HOUSEKEEPING,
    SALES_REPORT,
    RECOMPUTE_RATINGS,
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BookFairParams {
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SalesReportParams {
    /// The report covers this many days, ending with the tick's day.
    #[serde(default = "one")]
    days: i64,
}

fn one() -> i64 {
    1
}

/// Checks a job kind and its parameters (422 `validation_failed` naming the field).
pub fn validate(job_kind: &str, params: &Value) -> Result<(), ApiError> {
    fn check<T: serde::de::DeserializeOwned>(params: &Value) -> Result<T, ApiError> {
        serde_json::from_value(params.clone()).map_err(|error| {
            ApiError::Validation(vec![FieldError::new("params", error.to_string())])
        })
    }
    match job_kind {
        BOOK_FAIR => check::<BookFairParams>(params).map(|_| ()),
        SALES_REPORT => {
            let params: SalesReportParams = check(params)?;
            if (1..=366).contains(&params.days) {
                Ok(())
            } else {
                Err(ApiError::field("params", "days must be 1 to 366"))
            }
        }
        SALES_SUMMARY | CATALOG_IMPORT | CALENDAR_IMPORT | HOUSEKEEPING | RECOMPUTE_RATINGS => {
            check::<NoParams>(params).map(|_| ())
        }
        _ => Err(ApiError::field(
            "job_kind",
            format!("must be one of: {}", JOB_KINDS.join(", ")),
        )),
    }
}

/// Users mailed in one page of a walk over every active user.
const USERS_PER_PAGE: u32 = 500;

pub struct ScheduledJobs<D = PgUserDirectory> {
    state: AppState,
    /// Whom the mailing jobs write to.
    directory: D,
    import_feed: Option<std::path::PathBuf>,
    /// The calendar feed (`ESHOP_CALENDAR_FEED`): a file or an http(s) URL.
    calendar_feed: Option<String>,
    /// What fetches the calendar feed (built once, with the process's CA and timeout).
    feeds: FeedReader,
    /// What housekeeping's order sweep counts as stalled (the order worker's settings).
    sweep: SweepSettings,
}

/// The id of the mail a run sends one user: the same for every attempt at that tick.
fn mail_id(job: &JobRun, user_id: Uuid) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!(
            "schedule/{}/{}/{user_id}",
            job.schedule_id,
            job.tick.timestamp()
        )
        .as_bytes(),
    )
}

impl ScheduledJobs {
    pub fn new(
        state: AppState,
        import_feed: Option<std::path::PathBuf>,
        feeds: FeedReader,
    ) -> Self {
        let directory = PgUserDirectory::new(state.pool.clone());
        Self::with_directory(state, directory, import_feed, feeds)
    }
}

impl<D: UserDirectory> ScheduledJobs<D> {
    pub fn with_directory(
        state: AppState,
        directory: D,
        import_feed: Option<std::path::PathBuf>,
        feeds: FeedReader,
    ) -> Self {
        Self {
            state,
            directory,
            import_feed,
            calendar_feed: None,
            feeds,
            sweep: SweepSettings::default(),
        }
    }

    /// The feed the monthly calendar import reads.
    pub fn with_calendar_feed(mut self, feed: Option<String>) -> Self {
        self.calendar_feed = feed;
        self
    }

    /// Imports the calendar feed as the system (update or create; see
    /// `eshop_commands::calendar::import`). A run again for the same tick finds the work done.
    async fn calendar_import(&self, job: &JobRun) -> Result<Value, String> {
        let Some(feed) = &self.calendar_feed else {
            tracing::info!(
                "calendar import: no feed configured (ESHOP_CALENDAR_FEED); nothing to do"
            );
            return Ok(json!({"skipped": "no feed configured"}));
        };
        let text = self.feeds.read(feed).await.map_err(|e| e.to_string())?;
        let rows = eshop_commands::calendar::parse(&text, self.state.tz.name())
            .map_err(|e| e.to_string())?;
        let report = eshop_commands::calendar::import(
            &self.state.bus,
            rows,
            Actor::System,
            &format!("schedule-run-{}", job.run_id),
            |_, _| {},
        )
        .await
        .map_err(|e| e.to_string())?;
        tracing::info!(
            created = report.created,
            revised = report.revised,
            unchanged = report.unchanged,
            skipped = report.skipped.len(),
            "calendar import done"
        );
        Ok(json!(report))
    }

    /// Housekeeping sweeps orders as the order worker is configured to.
    pub fn sweeping_with(mut self, sweep: SweepSettings) -> Self {
        self.sweep = sweep;
        self
    }

    async fn mail_users(
        &self,
        job: &JobRun,
        template: Template,
        users: &[Uuid],
        context: &Value,
    ) -> Result<usize, String> {
        let recipients = Recipients::new(
            self.state.users.clone(),
            PersonalDataKeys::new(self.state.pool.clone()),
        );
        let mut recorded = 0;
        for user_id in users {
            let mut context = context.clone();
            let recipient = match recipients
                .of_user(*user_id)
                .await
                .map_err(|e| e.to_string())?
            {
                Lookup::Found(recipient) => {
                    if let Some(name) = recipient.name {
                        context["name"] = json!(name);
                    }
                    Some(recipient.address)
                }
                Lookup::Gone | Lookup::NotYet => None,
            };
            let mail = NewMail {
                source_id: mail_id(job, *user_id),
                template,
                position: None,
                source: job.job_kind.clone(),
                user_id: Some(*user_id),
                recipient,
                context,
            };
            if self
                .state
                .outbox
                .enqueue(&mail)
                .await
                .map_err(|e| e.to_string())?
            {
                recorded += 1;
            }
        }
        Ok(recorded)
    }

    /// The day so far (in the shop's time zone) to every active admin.
    async fn sales_summary(&self, job: &JobRun) -> Result<Value, String> {
        let day = job.tick.with_timezone(&self.state.tz).date_naive();
        let sales = reports::day_sales(&self.state.pool, day, self.state.tz, 5)
            .await
            .map_err(|e| e.to_string())?;
        let admins = self
            .directory
            .active_admins()
            .await
            .map_err(|e| e.to_string())?;
        let context = json!(sales);
        let mailed = self
            .mail_users(job, Template::SalesSummary, &admins, &context)
            .await?;
        Ok(
            json!({"day": day, "orders": sales.orders, "revenue_cents": sales.revenue_cents, "mails": mailed}),
        )
    }

    /// Every active user, a page at a time.
    async fn book_fair(&self, job: &JobRun) -> Result<Value, String> {
        let params: BookFairParams =
            serde_json::from_value(job.params.clone()).map_err(|e| e.to_string())?;
        let year = job
            .tick
            .with_timezone(&self.state.tz)
            .format("%Y")
            .to_string();
        let context = json!({"year": year, "message": params.message.unwrap_or_default()});
        let mut after = Uuid::nil();
        let mut mailed = 0;
        loop {
            let page = self
                .directory
                .active_users_after(after, USERS_PER_PAGE)
                .await
                .map_err(|e| e.to_string())?;
            let Some(last) = page.last() else { break };
            after = *last;
            mailed += self
                .mail_users(job, Template::BookFair, &page, &context)
                .await?;
        }
        Ok(json!({"mails": mailed}))
    }

    /// Adds the feed's products (validated like `POST /api/products`) as the system. Each
    /// command's id, and so the new product's id, is derived from the product's title, author
    /// and date: importing the same feed again adds nothing.
    async fn catalog_import(&self, job: &JobRun) -> Result<Value, String> {
        let Some(feed) = &self.import_feed else {
            tracing::info!("catalog import: no feed configured (ESHOP_IMPORT_FEED); nothing to do");
            return Ok(json!({"skipped": "no feed configured"}));
        };
        let products = read_feed(feed).await?;
        let (mut added, mut existing, mut rejected) = (0, 0, Vec::new());
        for product in &products {
            let command = match add_command(product) {
                Ok(command) => command,
                Err(error) => {
                    rejected.push(json!({"title": product.title, "problem": error.problem()}));
                    continue;
                }
            };
            let digest = Sha256::digest(
                format!(
                    "{}\n{}\n{}",
                    product.title, product.author, product.published_date
                )
                .as_bytes(),
            );
            let key: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
            let context = CommandContext::repeatable(
                Actor::System,
                format!("schedule-run-{}", job.run_id),
                &["catalog-import", &key],
            );
            let id = context.new_aggregate_id().to_string();
            match self
                .state
                .bus
                .execute_with::<Product, _>(&id, command, &context, None, |_| ())
                .await
            {
                Ok(executed) if executed.appended > 0 => added += 1,
                Ok(_) | Err(CommandError::Rejected(ProductError::AlreadyExists)) => existing += 1,
                Err(error) => {
                    let problem = ApiError::from(error);
                    if problem.is_transient() {
                        return Err(problem.to_string());
                    }
                    rejected.push(json!({"title": product.title, "problem": problem.problem()}));
                }
            }
        }
        tracing::info!(
            added,
            existing,
            rejected = rejected.len(),
            "catalog import done"
        );
        Ok(json!({"added": added, "existing": existing, "rejected": rejected}))
    }

    /// Advances stalled orders and fails those that waited too long (their reservations are
    /// released), and drops idempotency records, finished tasks, ended sessions and unused
    /// personal-data keys past their retention.
    async fn housekeeping(&self) -> Result<Value, String> {
        let sweeper = OrderWorker::new(
            self.state.process.clone(),
            self.state.orders.clone(),
            self.state.jetstream.clone(),
            self.state.subjects.clone(),
            self.sweep,
        );
        let orders = sweeper.sweep_once().await.map_err(|e| e.to_string())?;
        let purged = self
            .state
            .idempotency
            .purge_expired()
            .await
            .map_err(|e| e.to_string())?;
        let tasks = self
            .state
            .tasks
            .purge_finished(TASK_RETENTION)
            .await
            .map_err(|e| e.to_string())?;
        let sessions = self
            .state
            .sessions
            .purge_ended(SESSION_RETENTION)
            .await
            .map_err(|e| e.to_string())?;
        // A day: far longer than any registration takes between making its key and appending.
        let unused_keys = PersonalDataKeys::new(self.state.pool.clone())
            .purge_unused(std::time::Duration::from_secs(24 * 3600))
            .await
            .map_err(|e| e.to_string())?;
        Ok(
            json!({"stalled_orders": orders, "idempotency_records_purged": purged,
                  "tasks_purged": tasks, "sessions_purged": sessions,
                  "unused_personal_keys_purged": unused_keys}),
        )
    }

    /// A task kind on a schedule: queue the task (run by whichever replica's worker).
    async fn queue_task(&self, job: &JobRun) -> Result<Value, String> {
        let input = if job.job_kind == SALES_REPORT {
            let params: SalesReportParams =
                serde_json::from_value(job.params.clone()).map_err(|e| e.to_string())?;
            let to = job.tick.with_timezone(&self.state.tz).date_naive();
            let from = to - chrono::Days::new(u64::try_from(params.days - 1).unwrap_or(0));
            json!({"from": from, "to": to})
        } else {
            json!({})
        };
        let task = self
            .state
            .tasks
            .create(&job.job_kind, &input, None)
            .await
            .map_err(|e| e.to_string())?;
        self.state
            .task_queue
            .publish(&task, Value::Null)
            .await
            .map_err(|e| e.to_string())?;
        Ok(json!({"task_id": task.id}))
    }
}

async fn read_feed(path: &Path) -> Result<Vec<AddRequest>, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|error| format!("cannot read the feed {}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| {
        format!(
            "the feed {} is not a JSON array of products: {error}",
            path.display()
        )
    })
}

impl<D: UserDirectory> JobRunner for ScheduledJobs<D> {
    #[tracing::instrument(
        name = "scheduled_job",
        skip_all,
        fields(job_kind = %job.job_kind, run_id = %job.run_id, tick = %job.tick)
    )]
    async fn run(&self, job: JobRun) -> Result<Value, String> {
        match job.job_kind.as_str() {
            SALES_SUMMARY => self.sales_summary(&job).await,
            BOOK_FAIR => self.book_fair(&job).await,
            CATALOG_IMPORT => self.catalog_import(&job).await,
            CALENDAR_IMPORT => self.calendar_import(&job).await,
            HOUSEKEEPING => self.housekeeping().await,
            SALES_REPORT | RECOMPUTE_RATINGS => self.queue_task(&job).await,
            other => Err(format!("unknown job kind {other}")),
        }
    }
}
