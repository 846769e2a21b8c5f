//! [`StoreError`]: why a store operation failed, and its `Result`.

/// A `Result` whose error is a [`StoreError`].
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// A boxed error from a store's driver, kept as the cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or answered with a transient error;
    /// the same write may succeed later.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What happened, naming the backend.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend refused the operation; retrying the same input fails again.
    #[error("store rejected the operation: {message}")]
    Rejected {
        /// What happened, naming the bad value.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Some events carried a fencing token that is no longer the fire's:
    /// another instance took the fire over. The other events of the batch
    /// were written; these never will be.
    #[error("store refused {refused} event(s) with a stale fencing token: {message}")]
    Fenced {
        /// How many events were refused.
        refused: u64,
        /// Which fires, for the log.
        message: String,
    },
    /// A value read back from the backend could not be decoded.
    #[error("corrupt record in store: {message}")]
    Corrupt {
        /// What could not be decoded.
        message: String,
    },
}

impl StoreError {
    /// A transient failure with its cause.
    pub fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Unavailable { message: message.into(), source: Some(source.into()) }
    }

    /// A permanent failure with its cause.
    pub fn rejected(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Rejected { message: message.into(), source: Some(source.into()) }
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// The outcome of a `write` that stores every event it can, out of
    /// `total`: `bad` names each event that cannot be stored and why,
    /// `refused` each fire whose events carried a stale fencing token.
    /// Bad events make it `Rejected`, naming the refused ones too (the
    /// engine then writes the batch again event by event, and each refused
    /// one answers `Fenced` on its own); refused ones alone, `Fenced`.
    pub fn write_outcome(total: usize, bad: Vec<String>, refused: Vec<String>) -> StoreResult<()> {
        let fenced = (!refused.is_empty()).then(|| StoreError::Fenced {
            refused: refused.len() as u64,
            message: refused.join(", "),
        });
        if bad.is_empty() {
            return fenced.map_or(Ok(()), Err);
        }
        let mut message = format!(
            "{} of {total} events cannot be stored, the others were written: {}",
            bad.len(),
            bad.join("; ")
        );
        if let Some(f) = fenced {
            message = format!("{message}; and {f}");
        }
        Err(StoreError::Rejected { message, source: None })
    }
}
