//! The seed of a simulation: read from the environment to replay a run,
//! and printed with the replay command when the run fails.

/// The environment variable that fixes the seed of [`run_seeded`].
pub const SEED_ENV: &str = "MSCRIBE_SIM_SEED";

/// Runs `body` with a seed: `MSCRIBE_SIM_SEED` if set, else `default`. If
/// `body` panics, prints the seed and how to replay it, then re-panics.
pub fn run_seeded<T>(test_name: &str, default: u64, body: impl FnOnce(u64) -> T) -> T {
    let seed = match std::env::var(SEED_ENV) {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("{SEED_ENV}=\"{s}\" is not a u64")),
        Err(_) => default,
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(seed))) {
        Ok(v) => v,
        Err(p) => {
            eprintln!(
                "simulation failed with seed {seed}; replay with:\n  {SEED_ENV}={seed} cargo test {test_name}"
            );
            std::panic::resume_unwind(p)
        }
    }
}
