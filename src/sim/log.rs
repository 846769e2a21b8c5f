//! [`EventLog`]: every record the scheduler made, in order, with its
//! virtual time.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::scheduler::Observer;
use crate::store::ExecutionEvent;

/// One logged event with the virtual time it was made at.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// When the scheduler made it.
    pub at: DateTime<Utc>,
    /// The event.
    pub event: ExecutionEvent,
}

/// An [`Observer`] that keeps every event in order.
#[derive(Debug)]
pub struct EventLog {
    clock: Arc<dyn Clock>,
    events: Mutex<Vec<LoggedEvent>>,
}

impl EventLog {
    /// An empty log stamping events from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        EventLog { clock, events: Mutex::new(Vec::new()) }
    }

    /// The events so far.
    pub fn events(&self) -> Vec<LoggedEvent> {
        self.events.lock().expect("log lock").clone()
    }

    /// How many events so far.
    pub fn len(&self) -> usize {
        self.events.lock().expect("log lock").len()
    }

    /// Whether no event was logged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Observer for EventLog {
    fn on_event(&self, event: &ExecutionEvent) {
        let at = self.clock.now();
        self.events.lock().expect("log lock").push(LoggedEvent { at, event: event.clone() });
    }
}
