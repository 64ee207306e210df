//! Xero's rate limits, counted per tenant (concurrent, per window, per day) and per app (per window),
//! in fixed windows of the sandbox clock. Every accounting response says what is left.

use axum::http::{HeaderMap, HeaderValue};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

use crate::settings::Limits;
use crate::Shared;

#[derive(Debug, Default)]
struct TenantCount {
    window: i64,
    in_window: u32,
    day: i64,
    in_day: u32,
    in_flight: u32,
}

#[derive(Debug, Default)]
pub struct Counters {
    tenants: HashMap<Uuid, TenantCount>,
    apps: HashMap<String, (i64, u32)>,
}

impl Counters {
    pub fn clear(&mut self) {
        self.tenants.clear();
        self.apps.clear();
    }
}

/// What is left after this call, as the `X-*-Remaining` headers say.
#[derive(Debug, Clone, Copy)]
pub struct Remaining {
    pub day: u32,
    pub minute: u32,
    pub app_minute: u32,
}

impl Remaining {
    pub fn write(&self, headers: &mut HeaderMap) {
        headers.insert("x-daylimit-remaining", HeaderValue::from(self.day));
        headers.insert("x-minlimit-remaining", HeaderValue::from(self.minute));
        headers.insert(
            "x-appminlimit-remaining",
            HeaderValue::from(self.app_minute),
        );
    }
}

/// A refused call: which limit, when to retry, and what is left.
#[derive(Debug, Clone, Copy)]
pub struct Limited {
    pub problem: &'static str,
    pub retry_after: Option<i64>,
    pub remaining: Remaining,
}

/// Holds one of the tenant's concurrent slots until dropped.
pub struct Permit {
    shared: Arc<Shared>,
    tenant: Uuid,
    pub remaining: Remaining,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counters = self
            .shared
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(t) = counters.tenants.get_mut(&self.tenant) {
            t.in_flight = t.in_flight.saturating_sub(1);
        }
    }
}

fn seconds_left_in_window(now: DateTime<Utc>, window: i64) -> i64 {
    let secs = now.timestamp();
    (window - secs.rem_euclid(window)).max(1)
}

/// Counts one call against every limit, or says which limit refuses it. A refused call is not counted.
pub fn acquire(shared: &Arc<Shared>, client_id: &str, tenant: Uuid) -> Result<Permit, Limited> {
    let limits: Limits = shared.world().limits;
    let now = shared.clock.now();
    let window_len = i64::from(limits.window_seconds.max(1));
    let window = now.timestamp().div_euclid(window_len);
    let day = now.timestamp().div_euclid(86_400);

    let mut guard = shared.counters.lock().unwrap_or_else(|e| e.into_inner());
    let counters = &mut *guard;
    let app = counters.apps.entry(client_id.to_string()).or_default();
    if app.0 != window {
        *app = (window, 0);
    }
    let app_used = app.1;
    let t = counters.tenants.entry(tenant).or_default();
    if t.window != window {
        t.window = window;
        t.in_window = 0;
    }
    if t.day != day {
        t.day = day;
        t.in_day = 0;
    }
    let remaining = |t: &TenantCount, app_used: u32| Remaining {
        day: limits.tenant_per_day.saturating_sub(t.in_day),
        minute: limits.tenant_per_window.saturating_sub(t.in_window),
        app_minute: limits.app_per_window.saturating_sub(app_used),
    };
    let refuse = |problem, retry_after| Limited {
        problem,
        retry_after,
        remaining: remaining(t, app_used),
    };
    if t.in_flight >= limits.tenant_concurrent {
        return Err(refuse("concurrent", None));
    }
    if t.in_day >= limits.tenant_per_day {
        return Err(refuse("day", Some(seconds_left_in_window(now, 86_400))));
    }
    if t.in_window >= limits.tenant_per_window {
        return Err(refuse(
            "minute",
            Some(seconds_left_in_window(now, window_len)),
        ));
    }
    if app_used >= limits.app_per_window {
        return Err(refuse(
            "appminute",
            Some(seconds_left_in_window(now, window_len)),
        ));
    }
    t.in_flight += 1;
    t.in_day += 1;
    t.in_window += 1;
    let left = remaining(t, app_used + 1);
    counters
        .apps
        .get_mut(client_id)
        .expect("entry made above")
        .1 += 1;
    Ok(Permit {
        shared: shared.clone(),
        tenant,
        remaining: left,
    })
}
