//! The batcher: cuts batches from what the sink's `write` queued (by count,
//! bytes and age) and from the disk buffer, and keeps up to `in_flight` of
//! them being delivered. While requests fail, what it queued goes to the
//! disk buffer instead (unless the disk is full).

use std::sync::Arc;
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc::Receiver;

use super::shared::{size, Origin, Shared};
use super::Encode;
use crate::config::logs::DeliveryConfig;
use crate::logs::Event;

/// Takes the next batch (at most `max_events` events and about
/// `max_bytes` bytes, at least one event) from the front of `pending`.
fn take_batch(pending: &mut Vec<Event>, bytes: &mut usize, config: &DeliveryConfig) -> Vec<Event> {
    let mut taken = 0;
    let mut count = 0;
    for event in pending.iter() {
        if count > 0
            && (count >= config.batch_max_events || taken + size(event) > config.batch_max_bytes)
        {
            break;
        }
        taken += size(event);
        count += 1;
    }
    *bytes -= taken;
    let rest = pending.split_off(count);
    std::mem::replace(pending, rest)
}

/// Runs until `input` is closed and every memory batch is delivered. What
/// the disk buffer holds is safe already and is left for the next start
/// if the input closes first.
pub(super) async fn run<E: Encode>(shared: Arc<Shared<E>>, mut input: Receiver<Vec<Event>>) {
    let config = shared.config.clone();
    let mut pending: Vec<Event> = Vec::new();
    let mut bytes = 0usize;
    let mut oldest = Instant::now();
    let mut open = true;
    let mut in_flight = FuturesUnordered::new();
    // Set when the disk buffer had no room for `pending`; cleared when a
    // request ends (which may free room), so a full disk is not retried in a loop.
    let mut disk_full = false;
    loop {
        if open && !pending.is_empty() && !disk_full && shared.disk.is_some() && shared.failing() {
            // An outage: what waits here goes to disk (acknowledged) rather
            // than into requests that would fail and hold it in memory.
            match shared.spill(std::mem::take(&mut pending)).await {
                None => bytes = 0,
                Some(back) => {
                    pending = back;
                    disk_full = true;
                }
            }
            continue;
        }
        let full = pending.len() >= config.batch_max_events || bytes >= config.batch_max_bytes;
        let can_send = in_flight.len() < config.in_flight;
        let due = oldest + config.batch_timeout;
        if can_send && !pending.is_empty() && (full || !open || due <= Instant::now()) {
            let batch = take_batch(&mut pending, &mut bytes, &config);
            in_flight.push(Arc::clone(&shared).deliver(batch, Origin::Memory));
            oldest = Instant::now();
            continue;
        }
        if can_send && open && shared.disk_unread() {
            let reader = Arc::clone(&shared);
            if let Ok(Some(chunk)) = tokio::task::spawn_blocking(move || reader.read_disk()).await {
                let origin = Origin::Disk(chunk.id);
                shared.hold(&chunk.events);
                in_flight.push(Arc::clone(&shared).deliver(chunk.events, origin));
                continue;
            }
        }
        if !open && !pending.is_empty() && shared.disk.is_some() && shared.failing() {
            // Shutdown during an outage: keep what is left on disk.
            let events = std::mem::take(&mut pending);
            bytes = 0;
            if let Some(events) = shared.spill(events).await {
                shared.release(&events);
            }
            continue;
        }
        if !open && pending.is_empty() && in_flight.is_empty() {
            return;
        }
        tokio::select! {
            Some(()) = in_flight.next(), if !in_flight.is_empty() => disk_full = false,
            batch = input.recv(), if open && !full => match batch {
                Some(batch) => {
                    if pending.is_empty() {
                        oldest = Instant::now();
                    }
                    bytes += batch.iter().map(size).sum::<usize>();
                    pending.extend(batch);
                }
                None => open = false,
            },
            () = tokio::time::sleep_until(due.into()), if can_send && !pending.is_empty() => {}
            () = shared.spilled.notified(), if can_send => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::stage::tests::event;

    #[test]
    fn batches_are_cut_by_count_and_bytes_and_never_empty() {
        let config = DeliveryConfig {
            batch_max_events: 3,
            batch_max_bytes: 25,
            ..DeliveryConfig::default()
        };
        let mut pending: Vec<Event> = (0..5).map(|_| event(b"0123456789")).collect();
        let mut bytes = 50;
        let first = take_batch(&mut pending, &mut bytes, &config);
        assert_eq!(
            (first.len(), pending.len(), bytes),
            (2, 3, 30),
            "25 bytes: two of ten"
        );
        let config = DeliveryConfig {
            batch_max_events: 2,
            batch_max_bytes: 5,
            ..config
        };
        let second = take_batch(&mut pending, &mut bytes, &config);
        assert_eq!(
            second.len(),
            1,
            "an event over the byte limit still goes alone"
        );
        let config = DeliveryConfig {
            batch_max_bytes: 1000,
            ..config
        };
        let third = take_batch(&mut pending, &mut bytes, &config);
        assert_eq!((third.len(), pending.len(), bytes), (2, 0, 0));
    }
}
