//! The engine's own costs, on the virtual clock (no OS timer, one thread):
//! registering 100,000 jobs, registering and starting them (start plans
//! every job's first fire), and running 10,000 no-op fires.
//!
//! `cargo bench -p mscribe-bench --bench dispatch`
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mscribe_bench::NullStore;
use mscribe_scheduler::{JobConfig, JobContext, JobScheduler, LocalRuntime};

fn scheduler(rt: &LocalRuntime) -> JobScheduler {
    JobScheduler::builder(Arc::new(rt.clock()), Arc::new(rt.spawner()))
        .store(Arc::new(NullStore::new()))
        .seed(1)
        .build()
}

fn configs(n: usize, every: Duration) -> Vec<JobConfig> {
    (0..n)
        .map(|i| JobConfig::new(format!("job-{i}"), |_ctx: JobContext| async {}).schedule(every))
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("dispatch");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(200));
    g.measurement_time(Duration::from_secs(3));

    // A fresh scheduler and 100,000 configs, built outside the timing.
    let fresh = || {
        let rt = LocalRuntime::new();
        let s = scheduler(&rt);
        (rt, s, configs(100_000, Duration::from_secs(1)))
    };

    g.bench_function("register_100k", |b| {
        b.iter_batched(
            fresh,
            |(rt, s, cfgs)| {
                for cfg in cfgs {
                    s.register(cfg).unwrap();
                }
                (rt, s)
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("register_and_start_100k", |b| {
        b.iter_batched(
            fresh,
            |(rt, s, cfgs)| {
                for cfg in cfgs {
                    s.register(cfg).unwrap();
                }
                rt.block_on(s.start()).unwrap();
                (rt, s)
            },
            BatchSize::PerIteration,
        )
    });

    // 1,000 jobs every second for 10 virtual seconds: 10,000 fires, each a
    // full run (two records, a spawned task, a handler call).
    g.bench_function("virtual_10k_fires", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let rt = LocalRuntime::new();
                let s = scheduler(&rt);
                for cfg in configs(1_000, Duration::from_secs(1)) {
                    s.register(cfg).unwrap();
                }
                rt.block_on(s.start()).unwrap();
                let t = Instant::now();
                rt.advance(Duration::from_secs(10));
                total += t.elapsed();
                rt.block_on(s.stop(Duration::from_secs(1))).unwrap();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
