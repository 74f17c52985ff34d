//! Scheduled jobs against real Postgres: two schedulers (two replicas) over one database run
//! each tick of an every-second schedule exactly once; a run cut short shows as interrupted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use eshop_infra::scheduler::{
    JobRun, JobRunner, PgSchedules, ScheduleInput, ScheduleSpec, Scheduler, SchedulerSettings,
    LEASE,
};
use eshop_infra::shutdown::shutdown_pair;
use eshop_infra::testing::fresh_database;

/// Records every tick it runs, and who ran it.
#[derive(Default)]
struct Recorder {
    runs: Mutex<Vec<(DateTime<Utc>, String)>>,
    name: String,
}

impl JobRunner for Recorder {
    async fn run(&self, job: JobRun) -> Result<Value, String> {
        // Long enough that the other replica surely fires the same tick meanwhile.
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.runs
            .lock()
            .map_err(|_| "poisoned".to_string())?
            .push((job.tick, self.name.clone()));
        Ok(json!({"by": self.name}))
    }
}

fn settings(owner: &str) -> SchedulerSettings {
    SchedulerSettings {
        tz: chrono_tz::UTC,
        poll: Duration::from_millis(100),
        owner: owner.to_string(),
    }
}

#[tokio::test]
async fn two_schedulers_run_each_tick_of_an_every_second_schedule_once() {
    let (_, pool) = fresh_database().await;
    sqlx::query("UPDATE schedules SET enabled = false WHERE builtin")
        .execute(&pool)
        .await
        .expect("built-ins paused");
    let schedules = PgSchedules::new(pool.clone());
    let schedule = schedules
        .create(
            &ScheduleInput {
                name: "every second".into(),
                job_kind: "probe".into(),
                params: json!({}),
                spec: ScheduleSpec::Cron("* * * * * *".into()),
                enabled: true,
            },
            None,
        )
        .await
        .expect("created");

    let recorders = [
        Arc::new(Recorder {
            name: "a".into(),
            ..Recorder::default()
        }),
        Arc::new(Recorder {
            name: "b".into(),
            ..Recorder::default()
        }),
    ];
    let (stop, shutdown) = shutdown_pair();
    let workers: Vec<_> = recorders
        .iter()
        .map(|recorder| {
            let scheduler = Scheduler::new(
                schedules.clone(),
                recorder.clone(),
                settings(&recorder.name),
            );
            tokio::spawn(scheduler.run(shutdown.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.trigger();
    for worker in workers {
        worker.await.expect("stopped");
    }
    // Let runs that started just before the stop finish.
    tokio::time::sleep(Duration::from_millis(400)).await;

    let mut by_tick: BTreeMap<DateTime<Utc>, Vec<String>> = BTreeMap::new();
    for recorder in &recorders {
        for (tick, name) in recorder.runs.lock().expect("runs").iter() {
            by_tick.entry(*tick).or_default().push(name.clone());
        }
    }
    assert!(by_tick.len() >= 4, "ran {} ticks in 6 s", by_tick.len());
    for (tick, runners) in &by_tick {
        assert_eq!(
            runners.len(),
            1,
            "tick {tick} ran {} times: {runners:?}",
            runners.len()
        );
    }
    let ticks: Vec<i64> = by_tick.keys().map(DateTime::timestamp).collect();
    assert!(
        ticks.windows(2).all(|pair| pair[1] - pair[0] == 1),
        "every second between the first and last tick ran: {ticks:?}"
    );
    assert!(by_tick
        .keys()
        .all(|tick| tick.timestamp_subsec_nanos() == 0));

    let history = schedules.runs(schedule.id, 100, None).await.expect("runs");
    let succeeded = history
        .iter()
        .filter(|run| run.status == "succeeded")
        .count();
    assert_eq!(succeeded, by_tick.len(), "one history row per run");
}

#[tokio::test]
async fn a_run_whose_replica_stopped_heartbeating_shows_as_interrupted() {
    let (_, pool) = fresh_database().await;
    let schedules = PgSchedules::new(pool.clone());
    let housekeeping = uuid::Uuid::parse_str("00000000-0000-7000-8000-000000000004").expect("id");
    let stale = chrono::Duration::from_std(LEASE * 2).expect("a duration");
    sqlx::query(
        "INSERT INTO schedule_runs (id, schedule_id, tick, status, owner, started_at, heartbeat_at)
         VALUES ($1, $2, now() - $3 * interval '1 second', 'running', 'crashed-replica',
                 now() - $3 * interval '1 second', now() - $3 * interval '1 second'),
                ($4, $2, now(), 'running', 'live-replica', now(), now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(housekeeping)
    .bind(stale.num_seconds())
    .bind(uuid::Uuid::now_v7())
    .execute(&pool)
    .await
    .expect("runs inserted");
    assert_eq!(schedules.mark_interrupted(LEASE).await.expect("marked"), 1);
    let runs = schedules.runs(housekeeping, 10, None).await.expect("runs");
    let statuses: Vec<(&str, &str)> = runs
        .iter()
        .map(|run| (run.owner.as_str(), run.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("live-replica", "running"),
            ("crashed-replica", "interrupted")
        ]
    );
    assert!(runs[1]
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("stopped"));
}
