//! Open event feeds (`GET /v1/events`, long-poll or Server-Sent Events) per device: at most
//! `server.max_event_streams_per_device` at once, and every one of a device's feeds ends the moment
//! its credentials do (unpaired, revoked for reuse of a refresh token, paired again, or its
//! organisation disconnected), so a session never outlives the credentials that opened it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug)]
pub struct Streams {
    limit: usize,
    open: Mutex<HashMap<Uuid, Device>>,
}

#[derive(Debug)]
struct Device {
    count: usize,
    /// Cancelled when the device's credentials end; replaced for feeds opened after that.
    ended: CancellationToken,
}

/// One open feed. It ends when [`Feed::ended`] fires; dropping it frees its place.
#[derive(Debug)]
pub struct Feed {
    owner: Arc<Streams>,
    device: Uuid,
    ended: CancellationToken,
}

impl Feed {
    /// Resolves when the device's credentials have ended.
    pub async fn ended(&self) {
        self.ended.cancelled().await
    }

    pub fn is_ended(&self) -> bool {
        self.ended.is_cancelled()
    }
}

impl Streams {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more feed of `device`, or `None` when it has its limit open.
    pub fn open(self: &Arc<Self>, device: Uuid) -> Option<Feed> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let entry = open.entry(device).or_insert_with(|| Device {
            count: 0,
            ended: CancellationToken::new(),
        });
        if entry.count >= self.limit.max(1) {
            return None;
        }
        entry.count += 1;
        Some(Feed {
            owner: self.clone(),
            device,
            ended: entry.ended.clone(),
        })
    }

    /// Ends every open feed of these devices (their credentials just ended).
    pub fn end(&self, devices: impl IntoIterator<Item = Uuid>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for device in devices {
            if let Some(entry) = open.get_mut(&device) {
                entry.ended.cancel();
                entry.ended = CancellationToken::new();
            }
        }
    }

    /// How many feeds `device` has open.
    pub fn count(&self, device: Uuid) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&device)
            .map_or(0, |d| d.count)
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = open.get_mut(&self.device) {
            entry.count = entry.count.saturating_sub(1);
            if entry.count == 0 {
                open.remove(&self.device);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_device_holds_at_most_its_limit_and_ending_it_ends_every_feed() {
        let streams = Streams::new(2);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = streams.open(a).unwrap();
        let second = streams.open(a).unwrap();
        assert!(streams.open(a).is_none(), "a third is refused");
        let other = streams.open(b).unwrap();
        streams.end([a]);
        tokio::time::timeout(std::time::Duration::from_secs(1), first.ended())
            .await
            .expect("ended");
        second.ended().await;
        assert!(!other.ended.is_cancelled(), "another device's feed goes on");
        drop(first);
        let later = streams.open(a).unwrap();
        assert!(
            !later.ended.is_cancelled(),
            "a feed opened with new credentials is not ended by the old ones"
        );
        drop((second, later));
        assert_eq!(streams.count(a), 0);
    }
}
