//! One conformance suite, run against every store: the engine's
//! `MemoryStore` (the reference), SQLite in a file, SQLite in memory, and
//! Postgres (a fresh database per test; the tests fail, never skip, when no
//! server is reachable). The cases live in `conformance/`, a file per
//! concern: execution records (`executions.rs`) and fire leases
//! (`leases.rs`) for every store; `HourlyMetricsStore` (`hourly.rs`),
//! `ControlStore` (`control.rs`) and `AlertStore` (`alerts.rs`), each with
//! cases of two handles on one database for SQLite in a file and Postgres,
//! for the SQL stores. This file makes one test of each case for each
//! backend.

#[path = "conformance/alerts.rs"]
mod alerts;
mod common;
#[path = "conformance/control.rs"]
mod control;
#[path = "conformance/executions.rs"]
mod executions;
#[path = "conformance/hourly.rs"]
mod hourly;
#[path = "conformance/leases.rs"]
mod leases;
#[path = "conformance/model.rs"]
mod model;

use common::*;

/// One test per case `$name`: it builds `$fixture`, names it `$f`, and
/// awaits `$module::$name $args` on `$threads` worker threads.
macro_rules! cases {
    ($threads:tt, $fixture:expr, |$f:ident| $module:ident $args:tt: $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
            async fn $name() {
                let $f = $fixture;
                $module::$name $args.await;
            }
        )+
    };
}

/// The execution and lease cases, for any store.
macro_rules! conformance {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            use super::*;

            cases!(2, $fixture, |f| executions(&*f.store):
                empty_store_reads_nothing,
                start_then_finish_round_trips,
                writes_are_idempotent,
                start_after_finish_keeps_the_end,
                finish_without_start_stores_the_whole_row,
                last_end_wins,
                error_kind_round_trips,
                an_end_over_a_started_row_sets_its_error_kind,
                history_is_newest_first_with_limit,
                history_ties_break_on_execution_id,
                history_filters_by_status,
                history_pages_across_equal_start_times,
                history_pages_with_a_status_filter,
                job_ids_match_exactly,
                every_status_round_trips,
                skipped_fires_are_rows,
                last_fire_is_the_latest_nominal_time,
                backfill_and_trigger_rows_do_not_move_the_last_scheduled_fire,
                abandoned_runs_of_dead_instances,
                abandoned_with_huge_staleness_only_takes_silent_instances,
                abandon_own_takes_every_running_row_of_the_instance,
                instances_are_those_with_a_recent_heartbeat,
                attempts_of_one_run_first_first,
                prune_keeps_running_rows_and_failures_longer,
                text_and_json_are_stored_verbatim,
                big_batches,
                claims_take_each_fire_once,
            );
            cases!(2, $fixture, |f| model(&*f.store):
                matches_the_memory_store,
                paired_starts_and_ends_match_the_memory_store,
                large_paired_writes_match_the_memory_store,
                a_partly_written_write_retried_matches_the_memory_store,
            );
            cases!(2, $fixture, |f| executions(f.store.clone()):
                concurrent_writers,
                concurrent_claims,
            );

            cases!(2, $fixture, |f| leases(&*f.store):
                claims_hold_leases_with_fence_one,
                max_running_counts_live_leases,
                renewals_keep_only_held_leases,
                expired_leases_are_oldest_first,
                a_take_over_moves_the_run_and_fences_the_old_owner,
                a_take_over_without_rerun,
                an_event_with_a_stale_fence_is_refused_and_the_rest_of_the_batch_written,
                events_that_end_a_fire_end_its_lease,
                a_big_batch_with_a_few_stale_events,
                recorded_fires_are_final_rows_in_range,
                kind_and_fence_round_trip,
                leases_match_the_memory_store,
            );

            /// Two tasks on the store retake the same expired leases while
            /// the old owner writes: one take-over per fire.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_retakes() {
                let f = $fixture;
                retake_race(f.store.clone(), f.store.clone(), 20).await;
            }

            /// Two tasks claim fires of a job limited to one live lease.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_limited_claims() {
                let f = $fixture;
                limited_claims_race(f.store.clone(), f.store.clone(), 20).await;
            }
        }
    };
}

/// The `HourlyMetricsStore` cases, for a SQL store.
macro_rules! hourly_conformance {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            use super::*;

            cases!(2, $fixture, |f| hourly(f.hourly()):
                empty_store_has_no_hourly_rows,
                hourly_rows_upsert_by_job_and_hour,
                a_bad_hourly_row_writes_nothing,
                prune_hourly_deletes_the_hours_before,
            );
            cases!(2, $fixture, |f| hourly(&*f.store, f.hourly()):
                attempts_between_reads_by_nominal_time,
            );
        }
    };
}

/// The `ControlStore` cases, for a SQL store.
macro_rules! control_conformance {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            use super::*;

            cases!(2, $fixture, |f| control(f.control()):
                empty_store_has_no_control_state,
                definitions_upsert_by_job,
                a_bad_definition_writes_nothing,
                api_definitions_are_put_and_deleted_with_audit,
                a_listing_never_replaces_a_definition_made_through_the_api,
                pause_and_resume_with_audit,
                notes_are_kept_in_full,
                triggers_are_taken_once_oldest_first,
                taking_is_capped,
                cancels_are_handled_once,
                audit_pages_newest_first,
                prune_keeps_the_newest_and_the_audit,
                prune_audit_keeps_the_newest_and_the_requests,
                bad_times_are_rejected,
                backfill_locks_admit_one_holder_until_they_run_out,
            );
            cases!(2, $fixture, |f| control(f.control(), &*f.store):
                a_trigger_taken_and_never_claimed_is_taken_again,
                running_job_finds_only_a_running_run,
            );
        }
    };
}

/// The `ControlStore` cases of two handles on one database.
macro_rules! control_pair_conformance {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            use super::*;

            cases!(4, $fixture, |f| control(f.control.clone().unwrap(), f.other_control().await):
                racing_instances_take_each_trigger_once,
                racing_instances_get_one_backfill_lock,
                pause_is_visible_from_the_other_handle,
                a_cancel_is_handled_once_across_handles,
            );
        }
    };
}

conformance!(memory, Fixture::memory());
conformance!(sqlite_file, Fixture::sqlite_file().await);
conformance!(sqlite_memory, Fixture::sqlite_memory().await);
conformance!(postgres, Fixture::postgres().await);

mod hourly_metrics {
    use super::*;

    hourly_conformance!(sqlite_file, Fixture::sqlite_file().await);
    hourly_conformance!(sqlite_memory, Fixture::sqlite_memory().await);
    hourly_conformance!(postgres, Fixture::postgres().await);
}

mod control_state {
    use super::*;

    control_conformance!(sqlite_file, Fixture::sqlite_file().await);
    control_conformance!(sqlite_memory, Fixture::sqlite_memory().await);
    control_conformance!(postgres, Fixture::postgres().await);
}

mod control_two_handles {
    use super::*;

    control_pair_conformance!(sqlite_file, Fixture::sqlite_file().await);
    control_pair_conformance!(postgres, Fixture::postgres().await);
}

/// The `AlertStore` cases, for a SQL store; and those of two handles on one
/// database, for SQLite in a file and Postgres.
macro_rules! alert_conformance {
    ($backend:ident, $fixture:expr, pair: $pair:tt) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let f = $fixture;
                        alerts::$name(f.alerts()).await;
                    }
                };
            }

            case!(each_key_is_enqueued_once);
            case!(due_rows_follow_their_attempts);
            case!(deliveries_page_newest_first_and_filter);
            case!(prune_deletes_finished_rows_only);
            case!(streaks_count_failures_once_per_fire);
            case!(a_lease_has_one_holder_until_it_expires);
            case!(bad_values_are_rejected);
            alert_conformance!(@pair $pair, $fixture);
        }
    };
    (@pair true, $fixture:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn racing_instances_enqueue_and_count_once() {
            let f = $fixture;
            let other = f.other_alerts().await;
            alerts::racing_instances_enqueue_and_count_once(f.alerts.clone().unwrap(), other)
                .await;
        }
    };
    (@pair false, $fixture:expr) => {};
}

mod alert_outbox {
    use super::*;

    alert_conformance!(sqlite_file, Fixture::sqlite_file().await, pair: true);
    alert_conformance!(sqlite_memory, Fixture::sqlite_memory().await, pair: false);
    alert_conformance!(postgres, Fixture::postgres().await, pair: true);
}
