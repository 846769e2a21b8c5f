//! A local webhook receiver for the alert tests: records the JSON bodies
//! it answers, and can answer 200, answer 503, or hang (accept and never
//! answer) as a receiver that is down would.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use warp::Filter;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// 200, the body recorded.
    Ok = 0,
    /// 503, nothing recorded.
    Fail = 1,
    /// Never answers (the request waits an hour), nothing recorded.
    Hang = 2,
}

/// A running receiver on 127.0.0.1.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    mode: Arc<AtomicU8>,
    bodies: Arc<Mutex<Vec<Value>>>,
    headers: Arc<Mutex<Vec<Option<String>>>>,
}

impl Receiver {
    /// Starts one on a free port, on the current tokio runtime.
    pub async fn start(mode: Mode) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            url: format!("http://{addr}/hook"),
            mode: Arc::new(AtomicU8::new(mode as u8)),
            bodies: Arc::new(Mutex::new(Vec::new())),
            headers: Arc::new(Mutex::new(Vec::new())),
        };
        let state = r.clone();
        let route = warp::post()
            .and(warp::path("hook"))
            .and(warp::header::optional::<String>("x-token"))
            .and(warp::body::json())
            .then(move |token: Option<String>, body: Value| {
                let state = state.clone();
                async move {
                    match state.mode() {
                        Mode::Ok => {
                            state.bodies.lock().unwrap().push(body);
                            state.headers.lock().unwrap().push(token);
                            warp::http::StatusCode::OK
                        }
                        Mode::Fail => warp::http::StatusCode::SERVICE_UNAVAILABLE,
                        Mode::Hang => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            warp::http::StatusCode::OK
                        }
                    }
                }
            });
        tokio::spawn(warp::serve(route).incoming(listener).run());
        r
    }

    pub fn mode(&self) -> Mode {
        match self.mode.load(Ordering::SeqCst) {
            0 => Mode::Ok,
            1 => Mode::Fail,
            _ => Mode::Hang,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// The bodies answered 200, in order.
    pub fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// The `X-Token` header of each body answered 200.
    pub fn tokens(&self) -> Vec<Option<String>> {
        self.headers.lock().unwrap().clone()
    }

    /// How many bodies of `event` (the `json` format's field) were answered.
    pub fn count(&self, event: &str) -> usize {
        self.bodies().iter().filter(|b| b["event"] == event).count()
    }
}
